using System.Text.Json;
using Likeness.Engine.Autoencoder;
using Likeness.Engine.SafeTensors;
using Likeness.Engine.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Tests;

/// <summary>Hugging Face style checkpoints (sharded with an index, with their usual extras) load into the encoders and the autoencoder.</summary>
public sealed class CheckpointFolderTests
{
    /// <summary>Writes a module's weights as two BF16 shards with an index, plus extra keys, as Hugging Face does.</summary>
    internal static string Shard(nn.Module module, Dictionary<string, Tensor> extras, string? folder = null)
    {
        var dir = folder ?? Directory.CreateTempSubdirectory().FullName;
        Directory.CreateDirectory(dir);
        var all = module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.to_type(ScalarType.BFloat16));
        foreach (var (k, v) in extras) all[k] = v;
        var keys = all.Keys.Order(StringComparer.Ordinal).ToList();
        var halves = new[] { keys.Take(keys.Count / 2).ToList(), keys.Skip(keys.Count / 2).ToList() };
        var map = new Dictionary<string, string>();
        for (var i = 0; i < 2; i++)
        {
            var name = $"model-0000{i + 1}-of-00002.safetensors";
            SafeTensorsFile.Save(Path.Combine(dir, name), halves[i].ToDictionary(k => k, k => all[k]));
            foreach (var k in halves[i]) map[k] = name;
        }
        File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), JsonSerializer.Serialize(new { weight_map = map }));
        return dir;
    }

    [Fact]
    public void A_sharded_t5_with_its_tied_embedding_copy_loads_and_encodes_identically()
    {
        using var source = new T5Encoder(T5Params.Tiny);
        using (no_grad()) foreach (var (_, p) in source.named_parameters()) p.copy_(randn(p.shape).to_type(ScalarType.BFloat16).to_type(ScalarType.Float32));
        var folder = Shard(source, new() { ["encoder.embed_tokens.weight"] = source.state_dict()["shared.weight"].to_type(ScalarType.BFloat16) });
        using var loaded = new T5Encoder(T5Params.Tiny);
        CheckpointFolder.Load(loaded, folder);
        using var ids = tensor(new ByteT5Tokenizer().Encode("a photo", 16), [1, 16]);
        using var noGrad = no_grad();
        using var a = source.forward(ids);
        using var b = loaded.forward(ids);
        Assert.True(a.equal(b).all().item<bool>());
    }

    [Fact]
    public void A_clip_checkpoint_with_position_ids_loads_and_a_missing_key_is_named()
    {
        using var source = new ClipTextModel(ClipTextParams.Tiny);
        using (no_grad()) foreach (var (_, p) in source.named_parameters()) p.copy_(randn(p.shape).to_type(ScalarType.BFloat16).to_type(ScalarType.Float32));
        var folder = Shard(source, new() { ["text_model.embeddings.position_ids"] = arange(77).unsqueeze(0) });
        using var loaded = new ClipTextModel(ClipTextParams.Tiny);
        CheckpointFolder.Load(loaded, folder);
        using var ids = tensor(new ByteClipTokenizer().Encode("a photo", 77), [1, 77]);
        using var noGrad = no_grad();
        Assert.True(source.forward(ids).equal(loaded.forward(ids)).all().item<bool>());

        var single = Path.Combine(Directory.CreateTempSubdirectory().FullName, "partial.safetensors");
        SafeTensorsFile.Save(single, source.state_dict().Where(kv => kv.Key != "text_model.final_layer_norm.bias").ToDictionary(kv => kv.Key, kv => kv.Value));
        var error = Assert.Throws<InvalidDataException>(() => CheckpointFolder.Load(new ClipTextModel(ClipTextParams.Tiny), single));
        Assert.Contains("text_model.final_layer_norm.bias", error.Message);
    }

    [Fact]
    public void The_autoencoder_loads_an_ae_file()
    {
        using var source = AutoEncoder.CreateInitialized(AutoEncoderParams.Tiny, 5);
        var file = Path.Combine(Directory.CreateTempSubdirectory().FullName, "ae.safetensors");
        SafeTensorsFile.Save(file, source.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value));
        using var loaded = new AutoEncoder(AutoEncoderParams.Tiny);
        loaded.LoadWeights(file);
        using var x = rand(1, 3, 32, 32) * 2 - 1;
        using var noGrad = no_grad();
        Assert.True(source.Encode(x).equal(loaded.Encode(x)).all().item<bool>());
    }
}
