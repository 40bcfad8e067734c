using Likeness.Engine.Flux;
using Likeness.Engine.Lora;
using Likeness.Engine.SafeTensors;
using Likeness.Engine.Tools;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Tests;

/// <summary>Adapters exported to PEFT/diffusers and kohya and read back change the model exactly as the original.</summary>
public sealed class AdapterFormatTests
{
    private static readonly FluxParams Config = FluxModelTests.Small;

    private static (FluxModel Model, Inputs Inputs, Tensor Expected, string Native) Setup()
    {
        var model = FluxModel.CreateInitialized(Config, 31);
        var inputs = Inputs.Random(Config, 1, 6, 3, 4);
        var dir = Directory.CreateTempSubdirectory().FullName;
        var native = Path.Combine(dir, "native.safetensors");
        using (var lora = LoraAdapter.Create(model, rank: 4, alpha: 8, seed: 2))
        {
            using (no_grad())
            {
                var g = new Generator(3, device("cpu"));
                foreach (var p in lora.TrainableParameters()) p.add_(randn(p.shape, generator: g) * 0.1);
            }
            lora.Save(native, new Dictionary<string, string> { ["trigger_word"] = "ZOKRA", ["base_model"] = "flux-tiny" });
            var expected = Inputs.Run(model, inputs);
            return (model, inputs, expected, native);
        }
    }

    [Theory]
    [InlineData(AdapterFormat.Peft, false)]
    [InlineData(AdapterFormat.Kohya, false)]
    [InlineData(AdapterFormat.Native, false)]
    [InlineData(AdapterFormat.Peft, true)]
    [InlineData(AdapterFormat.Kohya, true)]
    public void An_exported_adapter_reads_back_to_the_same_output(AdapterFormat format, bool exportedAsFluxDev)
    {
        var (model, inputs, expected, native) = Setup();
        using var _ = model;
        using var __ = expected;
        var exported = Path.Combine(Path.GetDirectoryName(native)!, $"{format}-{exportedAsFluxDev}.safetensors");
        // The service exports with its preset's parameters (flux-dev's 3072 wide) while a model folder may hold another
        // size: the adapter's own shapes decide how fused layers split.
        AdapterFormats.Convert(native, exported, format, exportedAsFluxDev ? FluxParams.Dev : Config);
        using (var reader = SafeTensorsFile.Open(exported)) Assert.Equal(format, AdapterFormats.Detect(reader.Keys));
        Dictionary<string, Tensor> mergedNative;
        using (var original = LoraAdapter.Load(model, native))
        {
            original.Merge();
            mergedNative = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
        }
        using var lora = LoraAdapter.Load(model, exported);
        using var actual = Inputs.Run(model, inputs);
        Assert.True((actual - expected).abs().max().item<float>() <= 1e-5);
        AssertAdapterGives(model, lora, mergedNative, inputs);
    }

    [Fact]
    public void Peft_and_kohya_files_use_the_ecosystems_names()
    {
        var (model, _, expected, native) = Setup();
        using var _m = model;
        using var _e = expected;
        var dir = Path.GetDirectoryName(native)!;
        AdapterFormats.Convert(native, Path.Combine(dir, "p.safetensors"), AdapterFormat.Peft, Config);
        AdapterFormats.Convert(native, Path.Combine(dir, "k.safetensors"), AdapterFormat.Kohya, Config);
        using var peft = SafeTensorsFile.Open(Path.Combine(dir, "p.safetensors"));
        Assert.Contains("transformer.transformer_blocks.0.attn.to_q.lora_A.weight", peft.Keys);
        Assert.Contains("transformer.transformer_blocks.0.attn.add_v_proj.lora_B.weight", peft.Keys);
        Assert.Contains("transformer.transformer_blocks.0.ff_context.net.0.proj.lora_B.weight", peft.Keys);
        Assert.Contains("transformer.single_transformer_blocks.0.proj_mlp.lora_B.weight", peft.Keys);
        Assert.Contains("transformer.single_transformer_blocks.0.norm.linear.lora_A.weight", peft.Keys);
        Assert.Equal([Config.HiddenSize, 4L], peft.Info("transformer.transformer_blocks.0.attn.to_k.lora_B.weight").Shape);
        Assert.DoesNotContain(peft.Keys, k => k.Contains("alpha"));
        using var kohya = SafeTensorsFile.Open(Path.Combine(dir, "k.safetensors"));
        Assert.Contains("lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight", kohya.Keys);
        Assert.Contains("lora_unet_single_blocks_0_modulation_lin.lora_up.weight", kohya.Keys);
        using var alpha = kohya.Read("lora_unet_double_blocks_0_img_attn_qkv.alpha");
        Assert.Equal(8f, alpha.item<float>());
    }

    [Fact]
    public void The_forward_verb_applies_a_peft_adapter_with_a_strength()
    {
        var (model, inputs, expected, native) = Setup();
        using var _ = model;
        using var __ = expected;
        var dir = Path.GetDirectoryName(native)!;
        AdapterFormats.Convert(native, Path.Combine(dir, "p.safetensors"), AdapterFormat.Peft, Config);
        File.WriteAllText(Path.Combine(dir, "config.json"), Config.ToJson());
        SafeTensorsFile.Save(Path.Combine(dir, "w.safetensors"), model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value));
        SafeTensorsFile.Save(Path.Combine(dir, "in.safetensors"), inputs.AsFile());
        ForwardRunner.Run(Path.Combine(dir, "config.json"), Path.Combine(dir, "w.safetensors"), Path.Combine(dir, "in.safetensors"),
            Path.Combine(dir, "out.safetensors"), Path.Combine(dir, "p.safetensors"), 1f);
        using var reader = SafeTensorsFile.Open(Path.Combine(dir, "out.safetensors"));
        using var output = reader.Read("out");
        Assert.True((output - expected).abs().max().item<float>() <= 1e-5);

        ForwardRunner.Run(Path.Combine(dir, "config.json"), Path.Combine(dir, "w.safetensors"), Path.Combine(dir, "in.safetensors"),
            Path.Combine(dir, "zero.safetensors"), Path.Combine(dir, "p.safetensors"), 0f);
        using var zeroReader = SafeTensorsFile.Open(Path.Combine(dir, "zero.safetensors"));
        using var zero = zeroReader.Read("out");
        using var baseline = Inputs.Run(model, inputs);
        Assert.True((zero - baseline).abs().max().item<float>() <= 1e-6);
    }

    /// <summary>A random low-rank pair A [r, in], B [out, r].</summary>
    private static (Tensor A, Tensor B) Pair(long rank, long inFeatures, long outFeatures, Generator g) =>
        (randn([rank, inFeatures], generator: g) * 0.3, randn([outFeatures, rank], generator: g) * 0.3);

    /// <summary>
    /// The expected weights, stated independently of the import code: the base weights with each ΔW = scale·B·A added
    /// to the reference rows it is documented to land in.
    /// </summary>
    private static Dictionary<string, Tensor> MergedWeights(FluxModel source, IEnumerable<(string Weight, long Row, Tensor Delta)> deltas)
    {
        var weights = source.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
        foreach (var (weight, row, delta) in deltas) weights[weight].narrow(0, row, delta.shape[0]).add_(delta);
        return weights;
    }

    /// <summary>The output of a plain model (no adapter) with these weights.</summary>
    private static Tensor RunWith(Dictionary<string, Tensor> weights, Inputs inputs)
    {
        using var model = new FluxModel(Config);
        using (no_grad()) foreach (var (k, v) in model.state_dict()) v.copy_(weights[k]);
        return Inputs.Run(model, inputs);
    }

    /// <summary>
    /// The loaded adapter, merged, must give every weight its expected value (≤ 1e-5) — sensitive even where a layer
    /// barely moves the output — and the unmerged adapter the expected output.
    /// </summary>
    private static void AssertAdapterGives(FluxModel model, LoraAdapter lora, Dictionary<string, Tensor> expected, Inputs inputs)
    {
        using var expectedOutput = RunWith(expected, inputs);
        using var baseline = RunWith(model.state_dict(), inputs);
        Assert.True((expectedOutput - baseline).abs().max().item<float>() > 1e-3, "the adapter must matter");
        using (var actual = Inputs.Run(model, inputs))
            Assert.True((actual - expectedOutput).abs().max().item<float>() <= 1e-5, $"output max |diff| {(actual - expectedOutput).abs().max().item<float>()}");
        lora.Merge();
        foreach (var (key, value) in model.state_dict())
            Assert.True((value - expected[key]).abs().max().item<float>() <= 1e-5, $"{key}: max |diff| {(value - expected[key]).abs().max().item<float>()}");
        lora.Unmerge();
    }

    [Fact]
    public void A_hand_written_peft_file_lands_in_the_documented_reference_rows()
    {
        using var model = FluxModel.CreateInitialized(Config, 51);
        var inputs = Inputs.Random(Config, 1, 6, 3, 52);
        long h = Config.HiddenSize, mlp = Config.MlpHidden;
        var g = new Generator(53, device("cpu"));
        var (kA, kB) = Pair(2, h, h, g);             // double block 0, image to_k → img_attn.qkv rows [h, 2h)
        var (mA, mB) = Pair(3, h, mlp, g);           // single block 0 proj_mlp → linear1 rows [3h, 3h + mlp)
        var (nA, nB) = Pair(2, h, 2 * h, g);         // norm_out.linear (scale, shift) → final adaLN (shift, scale)
        var (xA, xB) = Pair(2, Config.InChannels, h, g); // x_embedder → img_in
        var (tA, tB) = Pair(2, 8, 8, g);             // a text-encoder part: left out
        var file = Path.Combine(Directory.CreateTempSubdirectory().FullName, "peft.safetensors");
        SafeTensorsFile.Save(file, new Dictionary<string, Tensor>
        {
            ["transformer.transformer_blocks.0.attn.to_k.lora_A.weight"] = kA,
            ["transformer.transformer_blocks.0.attn.to_k.lora_B.weight"] = kB,
            ["transformer.single_transformer_blocks.0.proj_mlp.lora_A.weight"] = mA,
            ["transformer.single_transformer_blocks.0.proj_mlp.lora_B.weight"] = mB,
            ["transformer.norm_out.linear.lora_A.weight"] = nA,
            ["transformer.norm_out.linear.lora_B.weight"] = nB,
            ["transformer.x_embedder.lora_A.weight"] = xA,
            ["transformer.x_embedder.lora_B.weight"] = xB,
            ["text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight"] = tA,
            ["text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight"] = tB,
        }, new Dictionary<string, string>
        {
            ["lora_adapter_metadata"] = """{"transformer.r": 2, "transformer.lora_alpha": 4, "transformer.alpha_pattern": {"proj_mlp": 6}}""",
        });

        // alpha 4 over each part's own rank (scale 2 for rank 2); proj_mlp has its own alpha, 6 over rank 3.
        var expected = MergedWeights(model,
        [
            ("double_blocks.0.img_attn.qkv.weight", h, kB.matmul(kA) * 2),
            ("single_blocks.0.linear1.weight", 3 * h, mB.matmul(mA) * 2),
            ("final_layer.adaLN_modulation.1.weight", h, nB.narrow(0, 0, h).matmul(nA) * 2),
            ("final_layer.adaLN_modulation.1.weight", 0, nB.narrow(0, h, h).matmul(nA) * 2),
            ("img_in.weight", 0, xB.matmul(xA) * 2),
        ]);
        using var lora = LoraAdapter.Load(model, file);
        AssertAdapterGives(model, lora, expected, inputs);
    }

    [Fact]
    public void A_hand_written_kohya_file_applies_its_alphas_through_the_forward_verb_on_a_diffusers_folder()
    {
        using var model = FluxModel.CreateInitialized(Config, 61);
        var inputs = Inputs.Random(Config, 1, 6, 3, 62);
        long h = Config.HiddenSize;
        var g = new Generator(63, device("cpu"));
        var (qA, qB) = Pair(4, h, 3 * h, g);
        var (fA, fB) = Pair(2, h, 2 * h, g);
        var (tA, tB) = Pair(2, 8, 8, g);
        var dir = Directory.CreateTempSubdirectory().FullName;
        SafeTensorsFile.Save(Path.Combine(dir, "kohya.safetensors"), new Dictionary<string, Tensor>
        {
            ["lora_unet_double_blocks_0_txt_attn_qkv.lora_down.weight"] = qA.to_type(ScalarType.BFloat16),
            ["lora_unet_double_blocks_0_txt_attn_qkv.lora_up.weight"] = qB.to_type(ScalarType.BFloat16),
            ["lora_unet_double_blocks_0_txt_attn_qkv.alpha"] = tensor(2f).to_type(ScalarType.BFloat16),
            ["lora_unet_final_layer_adaLN_modulation_1.lora_down.weight"] = fA,
            ["lora_unet_final_layer_adaLN_modulation_1.lora_up.weight"] = fB, // no alpha: alpha = rank
            ["lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight"] = tA,
            ["lora_te1_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight"] = tB,
        });
        var expected = MergedWeights(model,
        [
            ("double_blocks.0.txt_attn.qkv.weight", 0, qB.to_type(ScalarType.BFloat16).to_type(ScalarType.Float32).matmul(qA.to_type(ScalarType.BFloat16).to_type(ScalarType.Float32)) * 0.5),
            ("final_layer.adaLN_modulation.1.weight", 0, fB.matmul(fA)),
        ]);

        // The hidden check's path: a sharded diffusers transformer folder and the adapter through `engine forward`.
        DiffusersLayout.Save(model, Path.Combine(dir, "transformer"), 4_000, ScalarType.Float32);
        File.WriteAllText(Path.Combine(dir, "config.json"), Config.ToJson());
        SafeTensorsFile.Save(Path.Combine(dir, "in.safetensors"), inputs.AsFile());
        ForwardRunner.Run(Path.Combine(dir, "config.json"), Path.Combine(dir, "transformer"), Path.Combine(dir, "in.safetensors"),
            Path.Combine(dir, "out.safetensors"), Path.Combine(dir, "kohya.safetensors"));
        using var reader = SafeTensorsFile.Open(Path.Combine(dir, "out.safetensors"));
        using var output = reader.Read("out");
        Assert.True(Directory.EnumerateFiles(Path.Combine(dir, "transformer"), "*.safetensors").Count() > 1, "sharded");
        using var expectedOutput = RunWith(expected, inputs);
        Assert.True((output - expectedOutput).abs().max().item<float>() <= 1e-5, $"max |diff| {(output - expectedOutput).abs().max().item<float>()}");
        // The same file loaded in-process, merged weight by weight.
        using var lora = LoraAdapter.Load(model, Path.Combine(dir, "kohya.safetensors"));
        AssertAdapterGives(model, lora, expected, inputs);
    }

    [Fact]
    public void A_native_file_under_the_checkpoint_prefix_loads_as_the_plain_one()
    {
        var (model, inputs, expected, native) = Setup();
        using var _ = model;
        using var __ = expected;
        var prefixed = Path.Combine(Path.GetDirectoryName(native)!, "comfy.safetensors");
        using (var reader = SafeTensorsFile.Open(native))
            SafeTensorsFile.Save(prefixed, reader.Keys.ToDictionary(k => "diffusion_model." + k, k => reader.Read(k)), reader.Metadata);
        using var lora = LoraAdapter.Load(model, prefixed);
        using var actual = Inputs.Run(model, inputs);
        Assert.True((actual - expected).abs().max().item<float>() <= 1e-5);
    }
}
