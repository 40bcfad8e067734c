using Likeness.Engine.Flux;
using Likeness.Engine.SafeTensors;
using Likeness.Engine.Tools;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Tests;

/// <summary>The TorchSharp transformer against the independent double-precision statement of the reference.</summary>
public sealed class ParityTests
{
    private static readonly FluxParams Config = new(8, 8, 6, 10, 32, 2.0, 2, 2, 2, [4, 6, 6], 10_000, true, true);

    [Fact]
    public void Forward_matches_the_naive_reference_within_1e_5()
    {
        var (model, inputs) = Setup(Config);
        using var _ = model;
        using var output = Inputs.Run(model, inputs);
        var golden = Naive(Config, model, inputs);
        var actual = output[0].data<float>().ToArray();
        var maxDiff = golden.SelectMany(r => r).Select((g, i) => Math.Abs(g - actual[i])).Max();
        Assert.True(maxDiff <= 1e-5, $"max |diff| = {maxDiff}");
        Assert.True(golden.SelectMany(r => r).Max(Math.Abs) > 0.1, "the golden output is not trivially small");
    }

    [Fact]
    public void The_forward_verb_reads_reference_files_and_writes_out()
    {
        var config = Config with { GuidanceEmbed = false };
        var (model, inputs) = Setup(config);
        using var _ = model;
        var dir = Directory.CreateTempSubdirectory().FullName;
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJson());
        SafeTensorsFile.Save(Path.Combine(dir, "w.safetensors"), model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.to_type(ScalarType.Float16)));
        SafeTensorsFile.Save(Path.Combine(dir, "in.safetensors"), inputs.AsFile());
        ForwardRunner.Run(Path.Combine(dir, "config.json"), Path.Combine(dir, "w.safetensors"), Path.Combine(dir, "in.safetensors"), Path.Combine(dir, "out.safetensors"));

        // The file's weights are F16: the golden values use the same rounded weights.
        using (no_grad()) foreach (var (_, p) in model.named_parameters()) p.copy_(p.to_type(ScalarType.Float16).to_type(ScalarType.Float32));
        var golden = Naive(config, model, inputs with { Guidance = null });
        using var reader = SafeTensorsFile.Open(Path.Combine(dir, "out.safetensors"));
        Assert.Equal("F32", reader.Info("out").Dtype);
        using var output = reader.Read("out");
        Assert.Equal([1L, inputs.Img.shape[1], 8], output.shape);
        var actual = output[0].data<float>().ToArray();
        var maxDiff = golden.SelectMany(r => r).Select((g, i) => Math.Abs(g - actual[i])).Max();
        Assert.True(maxDiff <= 1e-4, $"max |diff| = {maxDiff}");
    }

    [Fact]
    public void Timestep_embedding_matches_hand_computed_values()
    {
        using var emb = FluxMath.TimestepEmbedding(tensor(new[] { 0.5f }));
        Assert.Equal([1L, 256], emb.shape);
        var v = emb[0].data<float>().ToArray();
        Assert.Equal(Math.Cos(500.0), v[0], 4);              // i = 0: freq 1, t' = 500
        Assert.Equal(Math.Sin(500.0), v[128], 4);
        Assert.Equal(Math.Cos(500 * Math.Exp(-Math.Log(10000) * 64 / 128)), v[64], 4);
    }

    private static (FluxModel Model, Inputs Inputs) Setup(FluxParams config)
    {
        var model = FluxModel.CreateInitialized(config, 21);
        using (no_grad())
        {
            // Larger weights than the default init make every block matter to the output.
            var g = new Generator(5, device("cpu"));
            foreach (var (name, p) in model.named_parameters().OrderBy(x => x.name, StringComparer.Ordinal))
                if (!name.EndsWith(".scale")) p.copy_(randn(p.shape, generator: g) * 0.2);
                else p.copy_(1 + randn(p.shape, generator: g) * 0.1);
        }
        return (model, Inputs.Random(config, 1, 6, 3, 9));
    }

    private static double[][] Naive(FluxParams config, FluxModel model, Inputs i)
    {
        var weights = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.to_type(ScalarType.Float64).data<double>().ToArray());
        static double[][] Rows(Tensor t) => Enumerable.Range(0, (int)t.shape[1]).Select(r => t[0, r].to_type(ScalarType.Float64).data<double>().ToArray()).ToArray();
        return new NaiveFlux(config, weights).Forward(Rows(i.Img), Rows(i.ImgIds), Rows(i.Txt), Rows(i.TxtIds),
            i.T[0].to_type(ScalarType.Float64).item<double>(), i.Y[0].to_type(ScalarType.Float64).data<double>().ToArray(),
            i.Guidance is null ? 0 : i.Guidance[0].item<float>());
    }
}
