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
    [InlineData(AdapterFormat.Peft)]
    [InlineData(AdapterFormat.Kohya)]
    [InlineData(AdapterFormat.Native)]
    public void An_exported_adapter_reads_back_to_the_same_output(AdapterFormat format)
    {
        var (model, inputs, expected, native) = Setup();
        using var _ = model;
        using var __ = expected;
        var exported = Path.Combine(Path.GetDirectoryName(native)!, $"{format}.safetensors");
        AdapterFormats.Convert(native, exported, format, Config);
        using (var reader = SafeTensorsFile.Open(exported)) Assert.Equal(format, AdapterFormats.Detect(reader.Keys));
        using var lora = LoraAdapter.Load(model, exported);
        using var actual = Inputs.Run(model, inputs);
        Assert.True((actual - expected).abs().max().item<float>() <= 1e-5);
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
}
