namespace Likeness.Engine.Tests.Text;

/// <summary>
/// One weight as the naive encoder statements take it: row-major values in double with their shape, so the golden
/// forwards depend on nothing of TorchSharp. Matrices are [out, in] and embedding tables [rows, width], as in the
/// Hugging Face checkpoints.
/// </summary>
internal sealed record NaiveTensor(double[] Values, int[] Shape)
{
    /// <summary>Row <paramref name="r"/> of a matrix (an embedding vector, or one output unit's input weights).</summary>
    public double[] Row(int r)
    {
        var width = Shape[1];
        return Values[(r * width)..((r + 1) * width)];
    }

    /// <summary>The weight under <paramref name="key"/>, refusing a shape other than <paramref name="shape"/> so a mix-up is loud.</summary>
    public static NaiveTensor Get(IReadOnlyDictionary<string, NaiveTensor> weights, string key, params int[] shape)
    {
        if (!weights.TryGetValue(key, out var tensor)) throw new KeyNotFoundException($"The naive statement needs '{key}'.");
        if (!tensor.Shape.SequenceEqual(shape))
            throw new InvalidDataException($"'{key}' has shape [{string.Join(", ", tensor.Shape)}], expected [{string.Join(", ", shape)}].");
        return tensor;
    }

    /// <summary>y[o] = bias[o] + Σ_i weight[o, i]·x[i] — a PyTorch <c>Linear</c>, which stores weight as [out, in].</summary>
    public static double[] Linear(NaiveTensor weight, NaiveTensor? bias, double[] x)
    {
        var (outputs, inputs) = (weight.Shape[0], weight.Shape[1]);
        if (inputs != x.Length) throw new InvalidDataException($"A [{outputs}, {inputs}] weight applied to {x.Length} inputs.");
        var y = new double[outputs];
        for (var o = 0; o < outputs; o++)
        {
            var sum = bias?.Values[o] ?? 0.0;
            for (var i = 0; i < inputs; i++) sum += weight.Values[o * inputs + i] * x[i];
            y[o] = sum;
        }
        return y;
    }
}
