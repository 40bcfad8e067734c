using Likeness.Engine.Training;
using TorchSharp;
using Parameter = TorchSharp.Modules.Parameter;
using AdamW = Likeness.Engine.Training.AdamW;
using static TorchSharp.torch;

namespace Likeness.Engine.Tests;

/// <summary>AdamW over one flat buffer computes what it computes over the separate tensors, clipping included.</summary>
public sealed class OptimizerTests
{
    [Fact]
    public void AdamW_over_flat_parameters_matches_AdamW_over_separate_ones()
    {
        var generator = new Generator(5, device("cpu"));
        long[][] shapes = [[4, 3], [7], [2, 5, 3]];
        var initial = shapes.Select(s => randn(s, generator: generator)).ToList();
        var separate = initial.Select(t => new Parameter(t.clone(), requires_grad: true)).ToList();
        using var flat = new FlatParameters(initial, CPU);
        using var plain = new AdamW(separate, lr: 0.05, weightDecay: 0.01);
        using var fused = new AdamW(flat, lr: 0.05, weightDecay: 0.01);

        var norms = new List<(double Plain, double Fused)>();
        for (var step = 0; step < 6; step++)
        {
            // Large gradients on odd steps, so that clipping scales some steps and leaves others.
            using var size = (step % 2 == 1 ? 3.0 : 0.05).ToScalar();
            var grads = shapes.Select(s => randn(s, generator: generator).mul(size)).ToList();
            plain.ZeroGrad();
            fused.ZeroGrad();
            for (var i = 0; i < shapes.Length; i++)
            {
                separate[i].grad = grads[i].clone();
                using var target = flat.Parameters[i].grad;
                target!.copy_(grads[i]);
            }
            norms.Add((plain.ClipGradNorm(1.0), fused.ClipGradNorm(1.0)));
            plain.Step();
            fused.Step();
        }

        Assert.Contains(norms, n => n.Plain > 1.0);
        Assert.Contains(norms, n => n.Plain < 1.0);
        foreach (var (p, f) in norms) Assert.Equal(p, f, 1e-5);
        for (var i = 0; i < shapes.Length; i++)
        {
            Assert.True(separate[i].allclose(flat.Parameters[i], rtol: 1e-5, atol: 1e-6), $"parameter {i} differs");
            Assert.False(separate[i].allclose(initial[i]), $"parameter {i} did not move");
        }
    }

    [Fact]
    public void The_learning_rate_warms_up_then_falls_along_a_cosine_to_a_tenth()
    {
        Assert.Equal(1e-3 / 4, LearningRateSchedule.WarmupCosine(1e-3, 0, 100, 4), 12);
        Assert.Equal(1e-3, LearningRateSchedule.WarmupCosine(1e-3, 4, 100, 4), 12);
        // A LoRA's run has no warm-up: the peak at its first step, halfway between peak and floor halfway, near the floor at its last.
        Assert.Equal(5e-4, LearningRateSchedule.WarmupCosine(5e-4, 0, 1000, 0), 12);
        Assert.Equal(5e-4 * 0.55, LearningRateSchedule.WarmupCosine(5e-4, 500, 1000, 0), 12);
        Assert.InRange(LearningRateSchedule.WarmupCosine(5e-4, 999, 1000, 0), 5e-5, 5.001e-5);
        Assert.Equal(5e-5, LearningRateSchedule.WarmupCosine(5e-4, 1200, 1000, 0), 12);
    }
}
