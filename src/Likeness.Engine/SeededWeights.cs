using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine;

/// <summary>How one parameter starts: a constant, or normal noise with a standard deviation.</summary>
internal readonly record struct Init(double Constant, double? Std = null)
{
    public static readonly Init Zero = new(0), One = new(1);
    public static Init Normal(double std) => new(0, std);
}

/// <summary>
/// Deterministic initialisation for the small networks made from a seed: every parameter in ordinal name order, from
/// one CPU generator, so the same seed gives the same weights on every machine.
/// </summary>
internal static class SeededWeights
{
    public static void Fill(nn.Module module, long seed, Func<string, Tensor, Init> rule)
    {
        using var noGrad = no_grad();
        using var generator = new Generator((ulong)seed, torch.device("cpu"));
        foreach (var (name, parameter) in module.named_parameters().OrderBy(p => p.name, StringComparer.Ordinal))
        {
            var init = rule(name, parameter);
            if (init.Std is not { } std)
            {
                using var constant = init.Constant.ToScalar();
                parameter.fill_(constant);
                continue;
            }
            using var normal = randn(parameter.shape, generator: generator);
            using var scale = std.ToScalar();
            using var values = normal.mul(scale);
            parameter.copy_(values);
        }
    }

    /// <summary>Norm weights one, norm and other biases zero; everything else from <paramref name="std"/>.</summary>
    public static Init NormsAndBiasesFixed(string name, Tensor parameter, Func<string, Tensor, double> std) =>
        name.Contains("norm") ? (name.EndsWith("weight", StringComparison.Ordinal) ? Init.One : Init.Zero)
        : name.EndsWith(".bias", StringComparison.Ordinal) ? Init.Zero
        : Init.Normal(std(name, parameter));
}
