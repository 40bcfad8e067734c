using System.Diagnostics;
using System.Text.Json.Serialization;
using Likeness.Engine.Flux;
using Likeness.Engine.Lora;
using Likeness.Engine.Sampling;
using Likeness.Engine.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Tools;

public sealed record BenchResult(
    [property: JsonPropertyName("mode")] string Mode,
    [property: JsonPropertyName("batch")] int Batch,
    [property: JsonPropertyName("img_tokens")] int ImgTokens,
    [property: JsonPropertyName("txt_tokens")] int TxtTokens,
    [property: JsonPropertyName("threads")] int Threads,
    [property: JsonPropertyName("median_ms")] double MedianMs,
    [property: JsonPropertyName("model_gflops")] double ModelGflops,
    [property: JsonPropertyName("matmul_gflops")] double MatmulGflops,
    [property: JsonPropertyName("ratio")] double Ratio,
    [property: JsonPropertyName("matmul_bf16_gflops")] double MatmulBf16Gflops);

/// <summary>
/// <c>likeness engine bench</c>: times the transformer (forward, LoRA training step or full training step) on random
/// weights and inputs, and a 4096² fp32 matmul in the same process, and reports achieved FLOP/s of each; also
/// a matmul in bf16 (1024²: on a CPU without bf16 instructions 4096² takes minutes), which says whether
/// <c>--engine-precision bf16</c> pays on this CPU.
/// </summary>
public static class BenchRunner
{
    public static BenchResult Run(FluxParams p, string mode, int batch, int imgTokens, int txtTokens, int threads, int iterations = 7, int warmup = 2,
        bool checkpointing = false)
    {
        if (mode is not ("forward" or "train-lora" or "train-full")) throw new ArgumentException("mode is forward, train-lora or train-full.");
        EngineThreads.Apply(CPU, threads);
        using var model = FluxModel.CreateInitialized(p, 1);
        model.GradientCheckpointing = checkpointing;
        var g = new Generator(2, device("cpu"));
        using var img = randn([batch, imgTokens, p.InChannels], generator: g);
        var side = (long)Math.Ceiling(Math.Sqrt(imgTokens));
        using var imgIds = FluxSampling.ImageIds(batch, side * 2, side * 2).narrow(1, 0, imgTokens).contiguous();
        using var txt = randn([batch, txtTokens, p.ContextInDim], generator: g);
        using var txtIds = zeros(batch, txtTokens, 3);
        using var t = rand([batch], generator: g);
        using var y = randn([batch, p.VecInDim], generator: g);
        using var guidanceScalar = 3.5f.ToScalar();
        using var guidance = full(batch, guidanceScalar);
        using var target = randn([batch, imgTokens, p.OutChannels], generator: g);

        LoraAdapter? lora = null;
        AdamW? optimizer = null;
        if (mode == "train-lora")
        {
            foreach (var param in model.parameters()) param.requires_grad = false;
            lora = LoraAdapter.Create(model, 16, seed: 3);
            optimizer = new AdamW(lora.Flat!, lr: 1e-4);
        }
        else if (mode == "train-full") optimizer = new AdamW(model.parameters(), lr: 1e-5);

        void Step()
        {
            using var scope = NewDisposeScope();
            if (optimizer is null)
            {
                using var noGrad = no_grad();
                model.forward(img, imgIds, txt, txtIds, t, y, p.GuidanceEmbed ? guidance : null);
                return;
            }
            var pred = model.forward(img, imgIds, txt, txtIds, t, y, p.GuidanceEmbed ? guidance : null);
            var loss = nn.functional.mse_loss(pred, target);
            optimizer.ZeroGrad();
            loss.backward();
            optimizer.Step();
        }

        var median = Median(Step, iterations, warmup);
        lora?.Dispose();
        optimizer?.Dispose();
        var flops = ModelFlops(p, batch, imgTokens, txtTokens) * (mode == "forward" ? 1 : 3);
        var modelGflops = flops / (median / 1000) / 1e9;
        var matmulGflops = MatmulGflops();
        return new BenchResult(mode, batch, imgTokens, txtTokens, threads, Math.Round(median, 2),
            Math.Round(modelGflops, 2), Math.Round(matmulGflops, 2), Math.Round(modelGflops / matmulGflops, 3),
            Math.Round(MatmulGflops(1024, ScalarType.BFloat16), 2));
    }

    /// <summary>2 FLOPs per multiply-add over every matmul of one forward, attention's QKᵀ and AV included.</summary>
    public static double ModelFlops(FluxParams p, int batch, int imgTokens, int txtTokens)
    {
        double h = p.HiddenSize, m = p.MlpHidden, L = imgTokens, T = txtTokens, N = L + T, B = batch;
        var macs = B * L * p.InChannels * h + B * T * p.ContextInDim * h;
        macs += B * (256 * h + h * h) * (p.GuidanceEmbed ? 2 : 1) + B * (p.VecInDim * h + h * h);
        var attention = 2 * B * N * N * h; // QKᵀ and AV over all heads
        var dbl = 2 * B * h * 6 * h + B * N * h * 3 * h + attention + B * N * h * h + B * N * 2 * h * m;
        var single = B * h * 3 * h + B * N * h * (3 * h + m) + attention + B * N * (h + m) * h;
        macs += p.Depth * dbl + p.DepthSingleBlocks * single;
        macs += B * h * 2 * h + B * L * h * p.OutChannels;
        return 2 * macs;
    }

    public static double MatmulGflops(int n = 4096, ScalarType dtype = ScalarType.Float32)
    {
        using var a = randn(n, n).to_type(dtype);
        using var b = randn(n, n).to_type(dtype);
        var median = Median(() => { using var c = a.matmul(b); }, 3, 1);
        return 2.0 * n * n * n / (median / 1000) / 1e9;
    }

    private static double Median(Action step, int iterations, int warmup)
    {
        for (var i = 0; i < warmup; i++) step();
        var times = new List<double>();
        for (var i = 0; i < iterations; i++)
        {
            var w = Stopwatch.StartNew();
            step();
            times.Add(w.Elapsed.TotalMilliseconds);
        }
        times.Sort();
        return times[times.Count / 2];
    }
}
