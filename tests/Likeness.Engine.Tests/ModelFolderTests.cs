using System.Text.Json;
using Likeness.Engine.Autoencoder;
using Likeness.Engine.Flux;
using Likeness.Engine.SafeTensors;
using Likeness.Engine.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Tests;

/// <summary>
/// flux-dev end to end from a model folder in the published layout — reference or diffusers transformer,
/// ae.safetensors, Hugging Face CLIP and sharded T5, both tokenizers — at the tiny architecture's size.
/// </summary>
public sealed class ModelFolderTests
{
    /// <summary>flux-dev's files, loading code and token lengths (T5 512) with the tiny networks' shapes.</summary>
    private static readonly FluxPreset TinyDev = FluxPreset.Dev with
    {
        Transformer = FluxParams.Tiny,
        Autoencoder = AutoEncoderParams.Tiny,
        T5 = T5Params.Tiny,
        Clip = ClipTextParams.Tiny,
        BaseResolution = 64,
    };

    /// <summary>flux-schnell's: its own transformer file name, no guidance embedding, T5 256.</summary>
    private static readonly FluxPreset TinySchnell = FluxPreset.Schnell with
    {
        Transformer = FluxParams.Tiny with { GuidanceEmbed = false },
        Autoencoder = AutoEncoderParams.Tiny,
        T5 = T5Params.Tiny,
        Clip = ClipTextParams.Tiny,
        BaseResolution = 64,
    };

    /// <summary>
    /// A CLIP vocabulary: a few merged pieces, every printable ASCII character alone and word-final (so any ASCII
    /// prompt encodes), and the special tokens last, as in CLIP's own (the pooled position is the ids' argmax).
    /// </summary>
    private static readonly string[] ClipVocabulary =
    [
        .. new[] { "a</w>", "p", "h", "o", "t", "ph", "ot", "phot", "o</w>", "photo</w>", "f</w>" }
            .Concat(Enumerable.Range('!', '~' - '!' + 1).SelectMany(c => new[] { ((char)c).ToString(), (char)c + "</w>" })).Distinct(),
        "<|startoftext|>", "<|endoftext|>",
    ];

    private static long Clip(string token) => Array.IndexOf(ClipVocabulary, token);

    private sealed class Sources : IDisposable
    {
        public required FluxModel Transformer { get; init; }
        public required AutoEncoder Autoencoder { get; init; }
        public required T5Encoder T5 { get; init; }
        public required ClipTextModel Clip { get; init; }

        public void Dispose()
        {
            Transformer.Dispose();
            Autoencoder.Dispose();
            T5.Dispose();
            Clip.Dispose();
        }
    }

    /// <summary>Writes random networks into <paramref name="folder"/> in the published layout and returns them.</summary>
    private static Sources WriteFolder(string folder, bool diffusersTransformer, FluxPreset? preset = null)
    {
        preset ??= TinyDev;
        var sources = new Sources
        {
            Transformer = FluxModel.CreateInitialized(preset.Transformer, 5),
            Autoencoder = AutoEncoder.CreateInitialized(preset.Autoencoder, 6),
            T5 = new T5Encoder(preset.T5),
            Clip = new ClipTextModel(preset.Clip),
        };
        // Seeded, scaled by fan-in as trained weights roughly are, and rounded to BF16 so the BF16 files hold them exactly.
        using (no_grad())
        {
            using var generator = new Generator(7, device("cpu"));
            foreach (var module in new nn.Module[] { sources.T5, sources.Clip })
                foreach (var (name, p) in module.named_parameters())
                {
                    using var noise = randn(p.shape, generator: generator);
                    using var value = (p.shape.Length == 2 ? noise / Math.Sqrt(p.shape[1]) : name.Contains("norm") ? 1 + 0.1 * noise : 0.1 * noise)
                        .to_type(ScalarType.BFloat16);
                    p.copy_(value);
                }
        }

        if (diffusersTransformer) DiffusersLayout.Save(sources.Transformer, Path.Combine(folder, "transformer"), 300_000, ScalarType.Float32);
        else SafeTensorsFile.Save(Path.Combine(folder, ModelFolder.TransformerFile(preset)),
            sources.Transformer.state_dict().ToDictionary(kv => FluxModel.CheckpointPrefix + kv.Key, kv => kv.Value));
        SafeTensorsFile.Save(Path.Combine(folder, "ae.safetensors"), sources.Autoencoder.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value));
        CheckpointFolderTests.Shard(sources.Clip, new() { ["text_model.embeddings.position_ids"] = arange(77).unsqueeze(0) }, Path.Combine(folder, "text_encoder"));
        CheckpointFolderTests.Shard(sources.T5, new() { ["encoder.embed_tokens.weight"] = sources.T5.state_dict()["shared.weight"].to_type(ScalarType.BFloat16) },
            Path.Combine(folder, "text_encoder_2"));

        var tokenizer = Directory.CreateDirectory(Path.Combine(folder, "tokenizer")).FullName;
        File.WriteAllText(Path.Combine(tokenizer, "vocab.json"), JsonSerializer.Serialize(ClipVocabulary.Select((t, i) => (t, i)).ToDictionary(x => x.t, x => x.i)));
        File.WriteAllLines(Path.Combine(tokenizer, "merges.txt"), ["#version: 0.2", "p h", "o t", "ph ot", "phot o</w>"]);
        var tokenizer2 = Directory.CreateDirectory(Path.Combine(folder, "tokenizer_2")).FullName;
        File.WriteAllBytes(Path.Combine(tokenizer2, "spiece.model"), T5SentencePieceTokenizerTests.Model());
        return sources;
    }

    private static bool SameState(nn.Module a, nn.Module b)
    {
        var other = b.state_dict();
        return a.state_dict().All(kv => kv.Value.to_type(ScalarType.Float32).equal(other[kv.Key].to_type(ScalarType.Float32)).all().item<bool>());
    }

    [Theory]
    [InlineData("flux-dev", false)]
    [InlineData("flux-dev", true)]
    [InlineData("flux-schnell", false)]
    [InlineData("flux-schnell", true)]
    public void A_full_size_preset_loads_every_network_and_both_tokenizers_from_the_published_layout(string name, bool diffusersTransformer)
    {
        var preset = name == "flux-dev" ? TinyDev : TinySchnell;
        var tokens = name == "flux-dev" ? 512 : 256; // T5 length: 512 for dev, 256 for schnell
        var folder = Directory.CreateTempSubdirectory().FullName;
        using var sources = WriteFolder(folder, diffusersTransformer, preset);
        using var models = FluxModels.Load(preset, folder);

        Assert.Equal(ScalarType.Float32, models.Dtype);
        Assert.True(SameState(sources.Transformer, models.Transformer));
        Assert.True(SameState(sources.Autoencoder, models.Autoencoder));

        var (txt, vec) = models.Text.Encode(["a photo of"]);
        using (txt)
        using (vec)
        using (no_grad())
        {
            Assert.Equal([1L, tokens, 128], txt.shape);
            Assert.Equal([1L, 128], vec.shape);
            // T5: ▁a ▁photo ▁of </s>, then <pad> (0). CLIP: start, a</w>, photo</w>, o, f</w>, end, end… to 77.
            var t5Ids = new long[tokens];
            t5Ids[0] = 3; t5Ids[1] = 4; t5Ids[2] = 5; t5Ids[3] = 1;
            var clipIds = Enumerable.Repeat(Clip("<|endoftext|>"), 77).ToArray();
            clipIds[0] = Clip("<|startoftext|>"); clipIds[1] = Clip("a</w>"); clipIds[2] = Clip("photo</w>"); clipIds[3] = Clip("o"); clipIds[4] = Clip("f</w>");
            using var expectedTxt = sources.T5.forward(tensor(t5Ids, [1, tokens]));
            using var expectedVec = sources.Clip.forward(tensor(clipIds, [1, 77]));
            Assert.True(txt.equal(expectedTxt).all().item<bool>());
            Assert.True(vec.equal(expectedVec).all().item<bool>());
        }
        using var engine = new FluxEngine(preset, folder);
        var png = engine.Generate(new GenerateOptions(null, "a photo of", 32, 32, 1, Steps: 2));
        Assert.Equal((byte)0x89, png[0]);
    }

    [Fact]
    public void Both_transformer_layouts_generate_the_same_image()
    {
        byte[] Generate(bool diffusers)
        {
            var folder = Directory.CreateTempSubdirectory().FullName;
            using var sources = WriteFolder(folder, diffusers);
            // The encoders were drawn at random: give both folders the first folder's, so only the layout differs.
            if (_encoders is null) _encoders = folder;
            else foreach (var sub in new[] { "text_encoder", "text_encoder_2" })
            {
                Directory.Delete(Path.Combine(folder, sub), recursive: true);
                CopyFolder(Path.Combine(_encoders, sub), Path.Combine(folder, sub));
            }
            using var engine = new FluxEngine(TinyDev, folder);
            return engine.Generate(new GenerateOptions(null, "a photo of", 64, 48, 3, Steps: 3));
        }
        var single = Generate(false);
        var diffusers = Generate(true);
        Assert.Equal(single, diffusers);
        Assert.Equal((byte)0x89, single[0]); // PNG
    }

    private string? _encoders;

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
    }

    [Fact]
    public void A_folder_without_some_files_is_refused_naming_each()
    {
        var folder = Directory.CreateTempSubdirectory().FullName;
        using (WriteFolder(folder, diffusersTransformer: true)) { }
        File.Delete(Path.Combine(folder, "ae.safetensors"));
        File.Delete(Path.Combine(folder, "tokenizer_2", "spiece.model"));
        var error = Assert.Throws<InvalidOperationException>(() => FluxModels.Load(TinyDev, folder));
        Assert.Contains("ae.safetensors", error.Message);
        Assert.Contains("tokenizer_2/spiece.model", error.Message);
        Assert.DoesNotContain("text_encoder", error.Message);

        var none = Assert.Throws<InvalidOperationException>(() => FluxModels.Load(FluxPreset.Schnell, null));
        Assert.Contains("flux1-schnell.safetensors", none.Message);
    }

    [Fact]
    public void A_transformer_file_states_its_own_dimensions_and_networks_that_do_not_fit_are_refused()
    {
        var folder = Directory.CreateTempSubdirectory().FullName;
        using (WriteFolder(folder, diffusersTransformer: false)) { }
        // The preset says 64 wide; the file's shapes say 128 with 2 double and 4 single blocks: the file wins.
        var other = TinyDev with { Transformer = FluxParams.Tiny with { HiddenSize = 64, NumHeads = 2, Depth = 5 } };
        using (var models = FluxModels.Load(other, folder))
        {
            var p = models.Transformer.Params;
            Assert.Equal((128, 4, 2, 4, 128, 128), (p.HiddenSize, p.NumHeads, p.Depth, p.DepthSingleBlocks, p.ContextInDim, p.VecInDim));
            Assert.Equal(FluxParams.Tiny.AxesDim, p.AxesDim);
        }
        var narrowT5 = TinyDev with { T5 = T5Params.Tiny with { DModel = 64 } };
        var error = Assert.Throws<InvalidDataException>(() => FluxModels.Load(narrowT5, folder));
        Assert.Contains("do not fit together", error.Message);
    }

    [Fact]
    public void The_real_flux_dev_preset_takes_its_dimensions_from_the_folders_config_files()
    {
        var folder = Directory.CreateTempSubdirectory().FullName;
        using var sources = WriteFolder(folder, diffusersTransformer: true);
        // As the published repository has them: transformer/config.json (written with the shards), and these.
        var clip = TinyDev.Clip;
        var t5 = TinyDev.T5;
        var ae = TinyDev.Autoencoder;
        File.WriteAllText(Path.Combine(folder, "text_encoder", "config.json"), JsonSerializer.Serialize(new
        {
            architectures = new[] { "CLIPTextModel" }, hidden_act = "quick_gelu", hidden_size = clip.Hidden, intermediate_size = clip.Mlp,
            max_position_embeddings = clip.MaxPositions, num_attention_heads = clip.Heads, num_hidden_layers = clip.Layers, vocab_size = clip.VocabSize,
        }));
        File.WriteAllText(Path.Combine(folder, "text_encoder_2", "config.json"), JsonSerializer.Serialize(new
        {
            architectures = new[] { "T5EncoderModel" }, d_ff = t5.DFf, d_kv = t5.DKv, d_model = t5.DModel, feed_forward_proj = "gated-gelu",
            num_heads = t5.NumHeads, num_layers = t5.NumLayers, relative_attention_num_buckets = 32, relative_attention_max_distance = 128, vocab_size = t5.VocabSize,
        }));
        Directory.CreateDirectory(Path.Combine(folder, "vae"));
        File.WriteAllText(Path.Combine(folder, "vae", "config.json"), JsonSerializer.Serialize(new
        {
            _class_name = "AutoencoderKL", block_out_channels = ae.ChMult.Select(m => m * ae.Ch).ToArray(), in_channels = 3, out_channels = 3,
            latent_channels = ae.ZChannels, layers_per_block = ae.NumResBlocks, scaling_factor = 0.3611, shift_factor = 0.1159,
        }));

        using var models = FluxModels.Load(FluxPreset.Dev, folder);
        Assert.Equal("flux-dev", models.Preset.Name);
        Assert.True(SameState(sources.Transformer, models.Transformer));
        Assert.True(SameState(sources.Autoencoder, models.Autoencoder));
        Assert.Equal(TinyDev.Clip, models.Preset.Clip);
        Assert.Equal(TinyDev.T5, models.Preset.T5);
        var (txt, vec) = models.Text.Encode(["a photo of"]);
        using (txt) using (vec) Assert.Equal([1L, 512, 128], txt.shape);

        File.WriteAllText(Path.Combine(folder, "text_encoder_2", "config.json"), """{"d_model": 128, "feed_forward_proj": "relu"}""");
        Assert.Throws<NotSupportedException>(() => FluxModels.Load(FluxPreset.Dev, folder));
    }

    [Fact]
    public void Bf16_keeps_every_weight_in_bf16_and_stays_close_to_fp32()
    {
        var folder = Directory.CreateTempSubdirectory().FullName;
        using (WriteFolder(folder, diffusersTransformer: true)) { }
        using var fp32 = FluxModels.Load(TinyDev, folder, CPU, ScalarType.Float32);
        using var bf16 = FluxModels.Load(TinyDev, folder, CPU, ScalarType.BFloat16);
        Assert.All(bf16.Transformer.parameters().Concat(bf16.Autoencoder.parameters()), p => Assert.Equal(ScalarType.BFloat16, p.dtype));

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var (txt32, vec32) = fp32.Text.Encode(["a photo of"]);
        var (txt16, vec16) = bf16.Text.Encode(["a photo of"]);
        Assert.Equal(ScalarType.BFloat16, txt16.dtype);
        // bf16 keeps 8 significant bits: a few parts in a thousand per operation, about 1% through these stacks.
        Console.WriteLine($"bf16 vs fp32 relative error: T5 {RelativeError(txt16, txt32):E2}, CLIP {RelativeError(vec16, vec32):E2}");
        Assert.True(RelativeError(txt16, txt32) < 0.03, $"T5 {RelativeError(txt16, txt32)}");
        Assert.True(RelativeError(vec16, vec32) < 0.03, $"CLIP {RelativeError(vec16, vec32)}");

        using var generator = new Generator(8, device("cpu"));
        var img = randn([1, 12, 64], generator: generator);
        var imgIds = Sampling.FluxSampling.ImageIds(1, 6, 8);
        var txtIds = Sampling.FluxSampling.TextIds(1, 512);
        var t = full([1], 0.7f);
        var guidance = full([1], 3.5f);
        var out32 = fp32.Transformer.forward(img, imgIds, txt32, txtIds, t, vec32, guidance);
        var out16 = bf16.Transformer.forward(img, imgIds, txt32, txtIds, t, vec32, guidance);
        Assert.Equal(ScalarType.BFloat16, out16.dtype);
        Console.WriteLine($"bf16 vs fp32 relative error: transformer {RelativeError(out16, out32):E2}");
        Assert.True(RelativeError(out16, out32) < 0.03, $"transformer {RelativeError(out16, out32)}");

        using var latents = randn([1, 16, 6, 8], generator: generator);
        var pixels16 = bf16.Autoencoder.Decode(latents);
        Assert.Equal(ScalarType.Float32, pixels16.dtype);
        Console.WriteLine($"bf16 vs fp32 relative error: decoder {RelativeError(pixels16, fp32.Autoencoder.Decode(latents)):E2}");
        Assert.True(RelativeError(pixels16, fp32.Autoencoder.Decode(latents)) < 0.03);
    }

    private static double RelativeError(Tensor actual, Tensor expected)
    {
        using var a = actual.to_type(ScalarType.Float64);
        using var e = expected.to_type(ScalarType.Float64);
        using var diff = (a - e).norm();
        using var scale = e.norm();
        return diff.item<double>() / scale.item<double>();
    }

    [Fact]
    public void Bf16_training_keeps_an_fp32_adapter_and_lowers_nothing_to_nan()
    {
        using var models = FluxModels.Load(FluxPreset.Tiny, null, CPU, ScalarType.BFloat16);
        var dir = Directory.CreateTempSubdirectory().FullName;
        var zip = SamplingAndTrainingTests.Dataset(dir, 2);
        var adapterPath = Path.Combine(dir, "a.safetensors");
        // As a full-size preset trains on a GPU: bf16 base, fp32 adapter, checkpointed blocks.
        var result = new Training.LoraTrainer(models).Train(
            new Training.LoraTrainingOptions(zip, adapterPath, Path.Combine(dir, "work"), 6, 4, 1, GradientCheckpointing: true), null, default);
        Assert.True(double.IsFinite(result.FinalLoss) && result.FinalLoss > 0, $"loss {result.FinalLoss}");
        using var reader = SafeTensorsFile.Open(adapterPath);
        Assert.All(reader.Keys, k => Assert.Equal("F32", reader.Info(k).Dtype));
        using var b = reader.Read("double_blocks.0.img_attn.qkv.lora_B.weight");
        Assert.True(b.abs().max().item<float>() > 0, "the adapter did not move");
    }

    [Fact]
    public void A_full_size_engine_trains_and_generates_on_one_set_of_networks()
    {
        var folder = Directory.CreateTempSubdirectory().FullName;
        using (WriteFolder(folder, diffusersTransformer: true)) { }
        var dir = Directory.CreateTempSubdirectory().FullName;
        var zip = SamplingAndTrainingTests.Dataset(dir, 2);
        using var engine = new FluxEngine(TinyDev, folder);
        Training.LoraTrainingOptions Options(string name) => new(zip, Path.Combine(dir, name + ".safetensors"), Path.Combine(dir, name), 3, 4, 1);

        engine.Train(Options("first"), null, default);
        var withAdapter = engine.Generate(new GenerateOptions(Path.Combine(dir, "first.safetensors"), "a photo of", 32, 32, 1, Steps: 2));
        // The generation left its adapter attached to the shared transformer: training must take it off, not fail.
        engine.Train(Options("second"), null, default);
        var again = engine.Generate(new GenerateOptions(Path.Combine(dir, "first.safetensors"), "a photo of", 32, 32, 1, Steps: 2));
        Assert.Equal(withAdapter, again);
    }
}
