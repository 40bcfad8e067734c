using Likeness.Engine.Flux;

namespace Likeness.Engine.Tests;

/// <summary>
/// An independent, deliberately plain re-statement of the reference forward (batch 1) in double precision over
/// arrays: the golden values the TorchSharp model is checked against.
/// </summary>
internal sealed class NaiveFlux(FluxParams p, IReadOnlyDictionary<string, double[]> w)
{
    private int H => p.HiddenSize;
    private int D => p.HeadDim;

    public double[][] Forward(double[][] img, double[][] imgIds, double[][] txt, double[][] txtIds, double t, double[] y, double guidance)
    {
        var vec = Mlp("time_in", Temb(t));
        if (p.GuidanceEmbed) vec = Add(vec, Mlp("guidance_in", Temb(guidance)));
        vec = Add(vec, Mlp("vector_in", y));
        var x = img.Select(r => Linear("img_in", r)).ToArray();
        var c = txt.Select(r => Linear("txt_in", r)).ToArray();
        var ids = txtIds.Concat(imgIds).ToArray();
        var angles = ids.Select(Angles).ToArray();

        for (var i = 0; i < p.Depth; i++) (x, c) = Double($"double_blocks.{i}", x, c, vec, angles);
        var joint = c.Concat(x).ToArray();
        for (var i = 0; i < p.DepthSingleBlocks; i++) joint = Single($"single_blocks.{i}", joint, vec, angles);
        var imgPart = joint.Skip(c.Length).ToArray();

        var mod = Linear("final_layer.adaLN_modulation.1", Silu(vec));
        var shift = mod[..H];
        var scale = mod[H..];
        return imgPart.Select(r => Linear("final_layer.linear", Modulate(LayerNorm(r), shift, scale))).ToArray();
    }

    private (double[][] Img, double[][] Txt) Double(string b, double[][] img, double[][] txt, double[] vec, double[][] angles)
    {
        var im = Linear($"{b}.img_mod.lin", Silu(vec));
        var tm = Linear($"{b}.txt_mod.lin", Silu(vec));
        double[] Part(double[] m, int k) => m[(k * H)..((k + 1) * H)];
        var (iq, ik, iv) = Qkv($"{b}.img_attn", img.Select(r => Modulate(LayerNorm(r), Part(im, 0), Part(im, 1))).ToArray());
        var (tq, tk, tv) = Qkv($"{b}.txt_attn", txt.Select(r => Modulate(LayerNorm(r), Part(tm, 0), Part(tm, 1))).ToArray());
        var attn = Attention(tq.Concat(iq).ToArray(), tk.Concat(ik).ToArray(), tv.Concat(iv).ToArray(), angles);
        var tAttn = attn.Take(txt.Length).ToArray();
        var iAttn = attn.Skip(txt.Length).ToArray();

        var newImg = img.Select((r, n) => Add(r, Mul(Part(im, 2), Linear($"{b}.img_attn.proj", iAttn[n])))).ToArray();
        newImg = newImg.Select(r => Add(r, Mul(Part(im, 5), MlpBlock($"{b}.img_mlp", Modulate(LayerNorm(r), Part(im, 3), Part(im, 4)))))).ToArray();
        var newTxt = txt.Select((r, n) => Add(r, Mul(Part(tm, 2), Linear($"{b}.txt_attn.proj", tAttn[n])))).ToArray();
        newTxt = newTxt.Select(r => Add(r, Mul(Part(tm, 5), MlpBlock($"{b}.txt_mlp", Modulate(LayerNorm(r), Part(tm, 3), Part(tm, 4)))))).ToArray();
        return (newImg, newTxt);
    }

    private double[][] Single(string b, double[][] x, double[] vec, double[][] angles)
    {
        var m = Linear($"{b}.modulation.lin", Silu(vec));
        var (shift, scale, gate) = (m[..H], m[H..(2 * H)], m[(2 * H)..]);
        var l1 = x.Select(r => Linear($"{b}.linear1", Modulate(LayerNorm(r), shift, scale))).ToArray();
        var q = l1.Select(r => NormHeads(r[..H], $"{b}.norm.query_norm.scale")).ToArray();
        var k = l1.Select(r => NormHeads(r[H..(2 * H)], $"{b}.norm.key_norm.scale")).ToArray();
        var v = l1.Select(r => r[(2 * H)..(3 * H)]).ToArray();
        var attn = Attention(q, k, v, angles);
        return x.Select((r, n) => Add(r, Mul(gate, Linear($"{b}.linear2", attn[n].Concat(l1[n][(3 * H)..].Select(Gelu)).ToArray())))).ToArray();
    }

    private (double[][] Q, double[][] K, double[][] V) Qkv(string a, double[][] x)
    {
        var qkv = x.Select(r => Linear($"{a}.qkv", r)).ToArray();
        return (qkv.Select(r => NormHeads(r[..H], $"{a}.norm.query_norm.scale")).ToArray(),
                qkv.Select(r => NormHeads(r[H..(2 * H)], $"{a}.norm.key_norm.scale")).ToArray(),
                qkv.Select(r => r[(2 * H)..]).ToArray());
    }

    /// <summary>RMSNorm each head's slice of a [H·D] row with the given scale.</summary>
    private double[] NormHeads(double[] row, string scaleKey)
    {
        var scale = w[scaleKey];
        var result = new double[row.Length];
        for (var h = 0; h < p.NumHeads; h++)
        {
            var slice = row[(h * D)..((h + 1) * D)];
            var rms = 1 / Math.Sqrt(slice.Select(v => v * v).Average() + 1e-6);
            for (var d = 0; d < D; d++) result[h * D + d] = slice[d] * rms * scale[d];
        }
        return result;
    }

    private double[][] Attention(double[][] q, double[][] k, double[][] v, double[][] angles)
    {
        var n = q.Length;
        var rq = q.Select((r, i) => Rope(r, angles[i])).ToArray();
        var rk = k.Select((r, i) => Rope(r, angles[i])).ToArray();
        var output = Enumerable.Range(0, n).Select(_ => new double[H]).ToArray();
        for (var h = 0; h < p.NumHeads; h++)
        for (var i = 0; i < n; i++)
        {
            var scores = new double[n];
            for (var j = 0; j < n; j++)
            {
                double s = 0;
                for (var d = 0; d < D; d++) s += rq[i][h * D + d] * rk[j][h * D + d];
                scores[j] = s / Math.Sqrt(D);
            }
            var max = scores.Max();
            var e = scores.Select(s => Math.Exp(s - max)).ToArray();
            var sum = e.Sum();
            for (var j = 0; j < n; j++)
            for (var d = 0; d < D; d++) output[i][h * D + d] += e[j] / sum * v[j][h * D + d];
        }
        return output;
    }

    /// <summary>Per head, pair j of the head dim turns by angle[j]: (x0, x1) → (cos·x0 − sin·x1, sin·x0 + cos·x1).</summary>
    private double[] Rope(double[] row, double[] angle)
    {
        var r = new double[row.Length];
        for (var h = 0; h < p.NumHeads; h++)
        for (var j = 0; j < D / 2; j++)
        {
            var (x0, x1) = (row[h * D + 2 * j], row[h * D + 2 * j + 1]);
            r[h * D + 2 * j] = Math.Cos(angle[j]) * x0 - Math.Sin(angle[j]) * x1;
            r[h * D + 2 * j + 1] = Math.Sin(angle[j]) * x0 + Math.Cos(angle[j]) * x1;
        }
        return r;
    }

    private double[] Angles(double[] id)
    {
        var result = new List<double>();
        for (var axis = 0; axis < p.AxesDim.Length; axis++)
            for (var j = 0; j < p.AxesDim[axis] / 2; j++)
                result.Add(id[axis] * Math.Pow(p.Theta, -2.0 * j / p.AxesDim[axis]));
        return [.. result];
    }

    /// <summary>The reference forms t' and the arguments in fp32 (t' = 3500 for guidance 3.5): so does this.</summary>
    private static double[] Temb(double t)
    {
        var e = new double[256];
        var scaled = (float)(1000f * (float)t);
        for (var i = 0; i < 128; i++)
        {
            var freq = MathF.Exp((float)(-Math.Log(10000)) * i / 128f);
            double arg = scaled * freq;
            e[i] = Math.Cos(arg);
            e[128 + i] = Math.Sin(arg);
        }
        return e;
    }

    private double[] Mlp(string name, double[] x) => Linear($"{name}.out_layer", Silu(Linear($"{name}.in_layer", x)));
    private double[] MlpBlock(string name, double[] x) => Linear($"{name}.2", Linear($"{name}.0", x).Select(Gelu).ToArray());

    private double[] Linear(string name, double[] x)
    {
        var weight = w[name + ".weight"];
        var outF = weight.Length / x.Length;
        var y = new double[outF];
        w.TryGetValue(name + ".bias", out var bias);
        for (var o = 0; o < outF; o++)
        {
            double s = bias?[o] ?? 0;
            for (var i = 0; i < x.Length; i++) s += weight[o * x.Length + i] * x[i];
            y[o] = s;
        }
        return y;
    }

    private static double[] LayerNorm(double[] x)
    {
        var mean = x.Average();
        var variance = x.Select(v => (v - mean) * (v - mean)).Average();
        return x.Select(v => (v - mean) / Math.Sqrt(variance + 1e-6)).ToArray();
    }

    private static double[] Modulate(double[] x, double[] shift, double[] scale) => x.Select((v, i) => (1 + scale[i]) * v + shift[i]).ToArray();
    private static double[] Silu(double[] x) => x.Select(v => v / (1 + Math.Exp(-v))).ToArray();
    private static double Gelu(double v) => 0.5 * v * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
    private static double[] Add(double[] a, double[] b) => a.Select((v, i) => v + b[i]).ToArray();
    private static double[] Mul(double[] a, double[] b) => a.Select((v, i) => v * b[i]).ToArray();
}
