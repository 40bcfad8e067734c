using Likeness.Engine.Text;

namespace Likeness.Engine.Tests.Text;

/// <summary>
/// An independent, loop-by-loop statement of the Hugging Face T5 v1.1 encoder forward in double over plain arrays,
/// written from the T5 definition rather than from the TorchSharp module: the golden values
/// <see cref="T5Encoder"/> is checked against. One sequence at a time, no attention mask (FLUX.1 passes none, so
/// padding tokens are attended like any other).
/// </summary>
internal sealed class NaiveT5(T5Params p, IReadOnlyDictionary<string, NaiveTensor> w)
{
    private const double Epsilon = 1e-6;

    private int Inner => p.NumHeads * p.DKv;

    /// <summary>Token ids [T] → the final-layer-normed hidden states [T][d_model].</summary>
    public double[][] Forward(int[] ids)
    {
        var length = ids.Length;
        var shared = NaiveTensor.Get(w, "shared.weight", p.VocabSize, p.DModel);
        var x = ids.Select(shared.Row).ToArray();

        // The bias table lives in block 0 and is added to the scores of every layer.
        var table = NaiveTensor.Get(w, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", p.RelativeBuckets, p.NumHeads);
        var bias = new double[p.NumHeads, length, length];
        for (var i = 0; i < length; i++)
            for (var j = 0; j < length; j++)
            {
                // Query i looking at key j: the offset is key minus query.
                var bucket = Bucket(j - i, p.RelativeBuckets, p.RelativeMaxDistance);
                for (var h = 0; h < p.NumHeads; h++) bias[h, i, j] = table.Values[bucket * p.NumHeads + h];
            }

        for (var layer = 0; layer < p.NumLayers; layer++)
        {
            var prefix = $"encoder.block.{layer}.layer.";
            var attended = SelfAttention(prefix + "0.", x.Select(r => Rms(r, prefix + "0.layer_norm.weight")).ToArray(), bias);
            x = x.Select((r, t) => Add(r, attended[t])).ToArray();
            x = x.Select(r => Add(r, GatedFeedForward(prefix + "1.DenseReluDense.", Rms(r, prefix + "1.layer_norm.weight")))).ToArray();
        }
        return x.Select(r => Rms(r, "encoder.final_layer_norm.weight")).ToArray();
    }

    /// <summary>
    /// T5's bidirectional relative-position bucket: half the buckets for keys after the query, half for the rest;
    /// within a half, distances below max_exact = half/2 get a bucket each, larger ones share buckets spaced
    /// logarithmically up to <paramref name="maxDistance"/>, and everything further falls in the last bucket.
    /// </summary>
    public static int Bucket(int relative, int numBuckets, int maxDistance)
    {
        var half = numBuckets / 2;
        var offset = relative > 0 ? half : 0;
        var distance = Math.Abs(relative);
        var maxExact = half / 2;
        if (distance < maxExact) return offset + distance;
        var logarithmic = Math.Log((double)distance / maxExact) / Math.Log((double)maxDistance / maxExact) * (half - maxExact);
        return offset + Math.Min(maxExact + (int)logarithmic, half - 1);
    }

    /// <summary>Multi-head attention without the 1/√d scaling (T5 folds it into the initialisation) plus the position bias.</summary>
    private double[][] SelfAttention(string prefix, double[][] normed, double[,,] bias)
    {
        var length = normed.Length;
        double[][] Project(string name) =>
            normed.Select(r => NaiveTensor.Linear(NaiveTensor.Get(w, prefix + name, Inner, p.DModel), null, r)).ToArray();
        var (q, k, v) = (Project("SelfAttention.q.weight"), Project("SelfAttention.k.weight"), Project("SelfAttention.v.weight"));

        var heads = Enumerable.Range(0, length).Select(_ => new double[Inner]).ToArray();
        for (var h = 0; h < p.NumHeads; h++)
            for (var i = 0; i < length; i++)
            {
                var scores = new double[length];
                for (var j = 0; j < length; j++)
                {
                    var dot = 0.0;
                    for (var c = 0; c < p.DKv; c++) dot += q[i][h * p.DKv + c] * k[j][h * p.DKv + c];
                    scores[j] = dot + bias[h, i, j];
                }
                var weights = Softmax(scores);
                for (var j = 0; j < length; j++)
                    for (var c = 0; c < p.DKv; c++) heads[i][h * p.DKv + c] += weights[j] * v[j][h * p.DKv + c];
            }
        var o = NaiveTensor.Get(w, prefix + "SelfAttention.o.weight", p.DModel, Inner);
        return heads.Select(r => NaiveTensor.Linear(o, null, r)).ToArray();
    }

    /// <summary>T5 v1.1's "gated-gelu" feed-forward: wo(gelu_tanh(wi_0·x) ⊙ wi_1·x).</summary>
    private double[] GatedFeedForward(string prefix, double[] x)
    {
        var gate = NaiveTensor.Linear(NaiveTensor.Get(w, prefix + "wi_0.weight", p.DFf, p.DModel), null, x);
        var linear = NaiveTensor.Linear(NaiveTensor.Get(w, prefix + "wi_1.weight", p.DFf, p.DModel), null, x);
        var hidden = new double[p.DFf];
        for (var f = 0; f < p.DFf; f++) hidden[f] = GeluTanh(gate[f]) * linear[f];
        return NaiveTensor.Linear(NaiveTensor.Get(w, prefix + "wo.weight", p.DModel, p.DFf), null, hidden);
    }

    /// <summary>T5's layer norm: divide by the root mean square (no mean subtracted, no bias), then scale.</summary>
    private double[] Rms(double[] x, string weightKey)
    {
        var weight = NaiveTensor.Get(w, weightKey, p.DModel);
        var meanSquare = 0.0;
        foreach (var e in x) meanSquare += e * e;
        meanSquare /= x.Length;
        var inverse = 1 / Math.Sqrt(meanSquare + Epsilon);
        var y = new double[x.Length];
        for (var i = 0; i < x.Length; i++) y[i] = weight.Values[i] * (x[i] * inverse);
        return y;
    }

    /// <summary>GELU with the tanh approximation ("gelu_new"): ½x(1 + tanh(√(2/π)(x + 0.044715x³))).</summary>
    private static double GeluTanh(double x) => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));

    private static double[] Softmax(double[] scores)
    {
        var max = scores.Max();
        var e = scores.Select(s => Math.Exp(s - max)).ToArray();
        var sum = e.Sum();
        return e.Select(v => v / sum).ToArray();
    }

    private static double[] Add(double[] a, double[] b) => a.Select((v, i) => v + b[i]).ToArray();
}
