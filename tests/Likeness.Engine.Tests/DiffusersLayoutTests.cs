using System.Text.Json;
using Likeness.Engine.Flux;
using Likeness.Engine.SafeTensors;
using Likeness.Engine.Tools;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Tests;

public sealed class DiffusersLayoutTests
{
    private static readonly FluxParams Config = FluxModelTests.Small with { Depth = 2, DepthSingleBlocks = 2 };

    [Fact]
    public void A_sharded_diffusers_transformer_loads_to_the_same_weights_and_output()
    {
        using var source = FluxModel.CreateInitialized(Config, 41);
        var folder = Path.Combine(Directory.CreateTempSubdirectory().FullName, "transformer");
        DiffusersLayout.Save(source, folder, shardBytes: 8 * 1024, ScalarType.Float32);

        var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "diffusion_pytorch_model.safetensors.index.json")));
        var keys = index.RootElement.GetProperty("weight_map").EnumerateObject().Select(e => e.Name).ToHashSet();
        Assert.Contains("transformer_blocks.1.attn.add_k_proj.weight", keys);
        Assert.Contains("single_transformer_blocks.0.proj_mlp.bias", keys);
        Assert.Contains("time_text_embed.guidance_embedder.linear_2.weight", keys);
        Assert.Contains("norm_out.linear.weight", keys);
        Assert.True(Directory.GetFiles(folder, "*.safetensors").Length > 3, "several shards");

        using var loaded = new FluxModel(Config);
        loaded.LoadWeights(Path.GetDirectoryName(folder)!); // the model folder, with transformer/ inside
        foreach (var (key, value) in source.state_dict())
            Assert.True(value.equal(loaded.state_dict()[key]).all().item<bool>(), key);

        var inputs = Inputs.Random(Config, 1, 6, 3, 8);
        using var a = Inputs.Run(source, inputs);
        using var b = Inputs.Run(loaded, inputs);
        Assert.True(a.equal(b).all().item<bool>());
    }

    [Fact]
    public void The_final_layer_swaps_scale_and_shift()
    {
        using var source = FluxModel.CreateInitialized(Config, 42);
        var folder = Directory.CreateTempSubdirectory().FullName;
        DiffusersLayout.Save(source, folder, 1 << 30, ScalarType.Float32);
        using var reader = SafeTensorsFile.Open(Directory.GetFiles(folder, "*.safetensors").Single());
        using var diffusers = reader.Read("norm_out.linear.bias");
        using var reference = source.state_dict()["final_layer.adaLN_modulation.1.bias"].clone();
        var h = Config.HiddenSize;
        Assert.True(diffusers.narrow(0, 0, h).equal(reference.narrow(0, h, h)).all().item<bool>()); // scale first
        Assert.True(diffusers.narrow(0, h, h).equal(reference.narrow(0, 0, h)).all().item<bool>());
    }

    [Fact]
    public void The_forward_verb_takes_a_diffusers_folder_in_bf16()
    {
        using var source = FluxModel.CreateInitialized(Config, 43);
        var dir = Directory.CreateTempSubdirectory().FullName;
        DiffusersLayout.Save(source, Path.Combine(dir, "transformer"), 16 * 1024, ScalarType.BFloat16);
        File.WriteAllText(Path.Combine(dir, "config.json"), Config.ToJson());
        var inputs = Inputs.Random(Config, 1, 4, 2, 9);
        SafeTensorsFile.Save(Path.Combine(dir, "in.safetensors"), inputs.AsFile());
        ForwardRunner.Run(Path.Combine(dir, "config.json"), Path.Combine(dir, "transformer"), Path.Combine(dir, "in.safetensors"), Path.Combine(dir, "out.safetensors"));
        using (no_grad()) foreach (var (_, p) in source.named_parameters()) p.copy_(p.to_type(ScalarType.BFloat16).to_type(ScalarType.Float32));
        using var expected = Inputs.Run(source, inputs);
        using var reader = SafeTensorsFile.Open(Path.Combine(dir, "out.safetensors"));
        using var output = reader.Read("out");
        Assert.True((output - expected).abs().max().item<float>() <= 1e-5);
    }

    [Theory]
    [InlineData("reference-shards")]
    [InlineData("diffusers-single-file")]
    [InlineData("diffusers-index-path")]
    public void Every_published_form_of_the_transformer_loads(string form)
    {
        using var source = FluxModel.CreateInitialized(Config, 44);
        var dir = Directory.CreateTempSubdirectory().FullName;
        string path;
        switch (form)
        {
            case "reference-shards":
                path = CheckpointFolderTests.Shard(source, [], Path.Combine(dir, "shards")); // BF16, two shards + index
                using (no_grad()) foreach (var (_, p) in source.named_parameters()) p.copy_(p.to_type(ScalarType.BFloat16).to_type(ScalarType.Float32));
                break;
            case "diffusers-single-file":
                DiffusersLayout.Save(source, dir, 1 << 30, ScalarType.Float32);
                path = Directory.GetFiles(dir, "*.safetensors").Single();
                break;
            default:
                DiffusersLayout.Save(source, dir, 8 * 1024, ScalarType.Float32);
                path = Directory.GetFiles(dir, "*.index.json").Single();
                break;
        }
        using var loaded = new FluxModel(Config);
        loaded.LoadWeights(path);
        foreach (var (key, value) in source.state_dict())
            Assert.True(value.equal(loaded.state_dict()[key]).all().item<bool>(), key);
    }

    [Fact]
    public void A_diffusers_config_reads_as_the_same_dimensions_and_the_forward_verb_finds_it_in_the_folder()
    {
        var config = FluxModelTests.Small with { MlpRatio = 4.0, Depth = 2 };
        Assert.Equal(config, FluxParams.FromJson(config.ToDiffusersJson()!) with { AxesDim = config.AxesDim });
        Assert.Equal(config.AxesDim, FluxParams.FromJson(config.ToDiffusersJson()!).AxesDim);
        Assert.Null((config with { MlpRatio = 2.0 }).ToDiffusersJson());
        var published = FluxParams.FromJson("""
            {"_class_name": "FluxTransformer2DModel", "attention_head_dim": 128, "axes_dims_rope": [16, 56, 56], "guidance_embeds": true,
             "in_channels": 64, "joint_attention_dim": 4096, "num_attention_heads": 24, "num_layers": 19, "num_single_layers": 38,
             "patch_size": 1, "pooled_projection_dim": 768, "out_channels": null}
            """);
        Assert.Equal(FluxParams.Dev with { AxesDim = published.AxesDim }, published);
        Assert.Equal(FluxParams.Dev.AxesDim, published.AxesDim);

        using var source = FluxModel.CreateInitialized(config, 45);
        var dir = Directory.CreateTempSubdirectory().FullName;
        DiffusersLayout.Save(source, Path.Combine(dir, "transformer"), 16 * 1024, ScalarType.Float32);
        var inputs = Inputs.Random(config, 1, 4, 2, 10);
        SafeTensorsFile.Save(Path.Combine(dir, "in.safetensors"), inputs.AsFile());
        ForwardRunner.Run(null, Path.Combine(dir, "transformer"), Path.Combine(dir, "in.safetensors"), Path.Combine(dir, "out.safetensors"));
        using var expected = Inputs.Run(source, inputs);
        using var reader = SafeTensorsFile.Open(Path.Combine(dir, "out.safetensors"));
        using var output = reader.Read("out");
        Assert.True((output - expected).abs().max().item<float>() <= 1e-6);
    }
}
