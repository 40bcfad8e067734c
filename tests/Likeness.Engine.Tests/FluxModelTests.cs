using Likeness.Engine.Flux;
using Likeness.Engine.Lora;
using Likeness.Engine.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Tests;

public sealed class FluxModelTests
{
    internal static readonly FluxParams Small = new(16, 16, 12, 20, 32, 2.0, 2, 1, 1, [4, 6, 6], 10_000, true, true);

    /// <summary>The reference checkpoint's keys and shapes for a config, written from the reference layout (not from our model).</summary>
    internal static SortedDictionary<string, long[]> ReferenceLayout(FluxParams p)
    {
        var h = p.HiddenSize;
        var mlp = p.MlpHidden;
        var d = h / p.NumHeads;
        var keys = new SortedDictionary<string, long[]>(StringComparer.Ordinal);
        void Linear(string name, long i, long o, bool bias = true)
        {
            keys[name + ".weight"] = [o, i];
            if (bias) keys[name + ".bias"] = [o];
        }
        Linear("img_in", p.InChannels, h);
        Linear("time_in.in_layer", 256, h); Linear("time_in.out_layer", h, h);
        Linear("vector_in.in_layer", p.VecInDim, h); Linear("vector_in.out_layer", h, h);
        if (p.GuidanceEmbed) { Linear("guidance_in.in_layer", 256, h); Linear("guidance_in.out_layer", h, h); }
        Linear("txt_in", p.ContextInDim, h);
        for (var i = 0; i < p.Depth; i++)
        {
            foreach (var s in new[] { "img", "txt" })
            {
                var b = $"double_blocks.{i}.{s}";
                Linear($"{b}_mod.lin", h, 6 * h);
                Linear($"{b}_attn.qkv", h, 3 * h, p.QkvBias);
                keys[$"{b}_attn.norm.query_norm.scale"] = [d];
                keys[$"{b}_attn.norm.key_norm.scale"] = [d];
                Linear($"{b}_attn.proj", h, h);
                Linear($"{b}_mlp.0", h, mlp);
                Linear($"{b}_mlp.2", mlp, h);
            }
        }
        for (var i = 0; i < p.DepthSingleBlocks; i++)
        {
            var b = $"single_blocks.{i}";
            Linear($"{b}.linear1", h, 3 * h + mlp);
            Linear($"{b}.linear2", h + mlp, h);
            keys[$"{b}.norm.query_norm.scale"] = [d];
            keys[$"{b}.norm.key_norm.scale"] = [d];
            Linear($"{b}.modulation.lin", h, 3 * h);
        }
        Linear("final_layer.linear", h, p.OutChannels);
        Linear("final_layer.adaLN_modulation.1", h, 2 * h);
        return keys;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Parameter_names_and_shapes_are_the_reference_checkpoints(bool guidance)
    {
        var p = Small with { GuidanceEmbed = guidance, QkvBias = guidance };
        using var model = new FluxModel(p);
        var actual = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        var expected = ReferenceLayout(p);
        Assert.Equal(expected.Keys, actual.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, shape) in expected) Assert.Equal(shape, actual[key]);
    }

    [Fact]
    public void Same_seed_makes_identical_weights_and_output()
    {
        using var a = FluxModel.CreateInitialized(Small, 7);
        using var b = FluxModel.CreateInitialized(Small, 7);
        using var c = FluxModel.CreateInitialized(Small, 8);
        var inputs = Inputs.Random(Small, 2, 6, 3, 1);
        using var ya = Inputs.Run(a, inputs);
        using var yb = Inputs.Run(b, inputs);
        using var yc = Inputs.Run(c, inputs);
        Assert.Equal([2L, 6, 16], ya.shape);
        Assert.True(ya.equal(yb).all().item<bool>());
        Assert.False(ya.allclose(yc));
    }

    [Fact]
    public void Loads_a_prefixed_bf16_checkpoint_and_refuses_a_wrong_one()
    {
        using var source = FluxModel.CreateInitialized(Small, 3);
        var dir = Directory.CreateTempSubdirectory().FullName;
        var file = Path.Combine(dir, "w.safetensors");
        SafeTensorsFile.Save(file, source.state_dict().ToDictionary(kv => FluxModel.CheckpointPrefix + kv.Key, kv => kv.Value.to_type(ScalarType.BFloat16)));
        using var target = new FluxModel(Small);
        target.LoadWeights(file);
        foreach (var (key, value) in source.state_dict())
        {
            using var expected = value.to_type(ScalarType.BFloat16).to_type(ScalarType.Float32);
            Assert.True(expected.equal(target.state_dict()[key]).all().item<bool>(), key);
        }

        var broken = source.state_dict().Where(kv => kv.Key != "img_in.bias").ToDictionary(kv => kv.Key, kv => kv.Value);
        SafeTensorsFile.Save(file, broken);
        var error = Assert.Throws<InvalidDataException>(() => target.LoadWeights(file));
        Assert.Contains("img_in.bias", error.Message);
    }

    [Fact]
    public void A_fresh_lora_changes_nothing_and_merged_equals_unmerged()
    {
        using var model = FluxModel.CreateInitialized(Small, 11);
        var inputs = Inputs.Random(Small, 1, 8, 4, 2);
        using var baseline = Inputs.Run(model, inputs);
        using var lora = LoraAdapter.Create(model, rank: 4, seed: 5);
        using (var fresh = Inputs.Run(model, inputs)) Assert.True(fresh.equal(baseline).all().item<bool>());

        using (no_grad()) foreach (var p in lora.TrainableParameters()) p.add_(randn(p.shape) * 0.05);
        using var adapted = Inputs.Run(model, inputs);
        Assert.True((adapted - baseline).abs().max().item<float>() > 1e-4);
        lora.Merge();
        using var merged = Inputs.Run(model, inputs);
        Assert.True((merged - adapted).abs().max().item<float>() <= 1e-5);
        lora.Unmerge();

        lora.Strength = 0.5f;
        using var half = Inputs.Run(model, inputs);
        Assert.True((half - baseline).abs().max().item<float>() < (adapted - baseline).abs().max().item<float>());
        lora.Strength = 1f;

        var dir = Directory.CreateTempSubdirectory().FullName;
        var file = Path.Combine(dir, "lora.safetensors");
        lora.Save(file, new Dictionary<string, string> { ["trigger_word"] = "ZOKRA" });
        lora.Detach();
        using (var detached = Inputs.Run(model, inputs)) Assert.True(detached.equal(baseline).all().item<bool>());
        using var loaded = LoraAdapter.Load(model, file);
        Assert.Equal("ZOKRA", loaded.Metadata["trigger_word"]);
        Assert.Equal(4, loaded.Rank);
        using var reloaded = Inputs.Run(model, inputs);
        Assert.True((reloaded - adapted).abs().max().item<float>() <= 1e-6);
    }
}

internal sealed record Inputs(Tensor Img, Tensor ImgIds, Tensor Txt, Tensor TxtIds, Tensor T, Tensor Y, Tensor? Guidance)
{
    public static Inputs Random(FluxParams p, int batch, int imgTokens, int txtTokens, long seed)
    {
        var g = new Generator((ulong)seed, device("cpu"));
        var ids = zeros(batch, imgTokens, 3);
        for (var i = 0; i < imgTokens; i++) { ids[.., i, 1] = tensor((float)(i / 3)); ids[.., i, 2] = tensor((float)(i % 3)); }
        return new Inputs(randn([batch, imgTokens, p.InChannels], generator: g), ids, randn([batch, txtTokens, p.ContextInDim], generator: g),
            zeros(batch, txtTokens, 3), rand([batch], generator: g), randn([batch, p.VecInDim], generator: g),
            p.GuidanceEmbed ? full(batch, 3.5f) : null);
    }

    /// <summary>The inputs under the reference names the forward verb reads (guidance only when present).</summary>
    public Dictionary<string, Tensor> AsFile()
    {
        var file = new Dictionary<string, Tensor> { ["img"] = Img, ["img_ids"] = ImgIds, ["txt"] = Txt, ["txt_ids"] = TxtIds, ["timesteps"] = T, ["y"] = Y };
        if (Guidance is not null) file["guidance"] = Guidance;
        return file;
    }

    public static Tensor Run(FluxModel m, Inputs i)
    {
        using var noGrad = no_grad();
        return m.forward(i.Img, i.ImgIds, i.Txt, i.TxtIds, i.T, i.Y, i.Guidance);
    }
}
