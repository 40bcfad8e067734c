using Likeness.Engine.Text;

namespace Likeness.Engine.Tests.Text;

/// <summary>
/// An independent, loop-by-loop statement of the Hugging Face CLIP text model forward in double over plain arrays,
/// written from the CLIP definition rather than from the TorchSharp module: the golden values
/// <see cref="ClipTextModel"/> is checked against. Pre-LN layers, causal attention scaled by 1/√head_dim,
/// quick-GELU, LayerNorm eps 1e-5; one sequence at a time, no padding mask (FLUX.1 passes none).
/// </summary>
internal sealed class NaiveClip(ClipTextParams p, IReadOnlyDictionary<string, NaiveTensor> w)
{
    private const double Epsilon = 1e-5;

    private int HeadDim => p.Hidden / p.Heads;

    /// <summary>
    /// Token ids [T] → the final-layer-normed hidden states [T][hidden], and the pooled vector: the row at the first
    /// end token, which CLIP's vocabulary makes the largest id.
    /// </summary>
    public (double[][] Hidden, double[] Pooled) Forward(int[] ids)
    {
        var tokens = NaiveTensor.Get(w, "text_model.embeddings.token_embedding.weight", p.VocabSize, p.Hidden);
        var positions = NaiveTensor.Get(w, "text_model.embeddings.position_embedding.weight", p.MaxPositions, p.Hidden);
        var x = ids.Select((id, t) => Add(tokens.Row(id), positions.Row(t))).ToArray();

        for (var layer = 0; layer < p.Layers; layer++)
        {
            var prefix = $"text_model.encoder.layers.{layer}.";
            var attended = CausalSelfAttention(prefix + "self_attn.", x.Select(r => LayerNorm(r, prefix + "layer_norm1")).ToArray());
            x = x.Select((r, t) => Add(r, attended[t])).ToArray();
            x = x.Select(r => Add(r, Mlp(prefix + "mlp.", LayerNorm(r, prefix + "layer_norm2")))).ToArray();
        }
        var hidden = x.Select(r => LayerNorm(r, "text_model.final_layer_norm")).ToArray();

        var end = 0;
        for (var t = 1; t < ids.Length; t++)
            if (ids[t] > ids[end]) end = t; // strictly greater: the first of equal maxima wins
        return (hidden, hidden[end]);
    }

    /// <summary>Scaled dot-product attention in which position i sees positions 0…i only.</summary>
    private double[][] CausalSelfAttention(string prefix, double[][] normed)
    {
        var length = normed.Length;
        double[][] Project(string name) => normed.Select(r => Linear(prefix + name, p.Hidden, p.Hidden, r)).ToArray();
        var (q, k, v) = (Project("q_proj"), Project("k_proj"), Project("v_proj"));
        var scale = 1 / Math.Sqrt(HeadDim);

        var heads = Enumerable.Range(0, length).Select(_ => new double[p.Hidden]).ToArray();
        for (var h = 0; h < p.Heads; h++)
            for (var i = 0; i < length; i++)
            {
                var scores = new double[i + 1];
                for (var j = 0; j <= i; j++)
                {
                    var dot = 0.0;
                    for (var c = 0; c < HeadDim; c++) dot += q[i][h * HeadDim + c] * k[j][h * HeadDim + c];
                    scores[j] = dot * scale;
                }
                var max = scores.Max();
                var e = scores.Select(s => Math.Exp(s - max)).ToArray();
                var sum = e.Sum();
                for (var j = 0; j <= i; j++)
                    for (var c = 0; c < HeadDim; c++) heads[i][h * HeadDim + c] += e[j] / sum * v[j][h * HeadDim + c];
            }
        return heads.Select(r => Linear(prefix + "out_proj", p.Hidden, p.Hidden, r)).ToArray();
    }

    /// <summary>fc1 → quick-GELU x·σ(1.702x) → fc2.</summary>
    private double[] Mlp(string prefix, double[] x)
    {
        var h = Linear(prefix + "fc1", p.Mlp, p.Hidden, x);
        for (var i = 0; i < h.Length; i++) h[i] *= 1 / (1 + Math.Exp(-1.702 * h[i]));
        return Linear(prefix + "fc2", p.Hidden, p.Mlp, h);
    }

    /// <summary>Subtract the mean, divide by √(biased variance + eps), then scale and shift.</summary>
    private double[] LayerNorm(double[] x, string name)
    {
        var weight = NaiveTensor.Get(w, name + ".weight", p.Hidden);
        var bias = NaiveTensor.Get(w, name + ".bias", p.Hidden);
        var mean = x.Average();
        var variance = x.Select(e => (e - mean) * (e - mean)).Average();
        var inverse = 1 / Math.Sqrt(variance + Epsilon);
        return x.Select((e, i) => (e - mean) * inverse * weight.Values[i] + bias.Values[i]).ToArray();
    }

    private double[] Linear(string name, int outputs, int inputs, double[] x) =>
        NaiveTensor.Linear(NaiveTensor.Get(w, name + ".weight", outputs, inputs), NaiveTensor.Get(w, name + ".bias", outputs), x);

    private static double[] Add(double[] a, double[] b) => a.Select((v, i) => v + b[i]).ToArray();
}
