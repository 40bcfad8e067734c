using Likeness.Engine.Autoencoder;

namespace Likeness.Engine.Tests;

/// <summary>C feature planes of H×W, row-major: one batch item of an autoencoder activation.</summary>
internal sealed record FeatureMap(int C, int H, int W, double[] V)
{
    public static FeatureMap Zeros(int c, int h, int w) => new(c, h, w, new double[c * h * w]);
    public double this[int c, int y, int x] { get => V[(c * H + y) * W + x]; set => V[(c * H + y) * W + x] = value; }
    public FeatureMap Map(Func<double, double> f) => this with { V = V.Select(f).ToArray() };
    public FeatureMap Plus(FeatureMap other) => this with { V = V.Select((v, i) => v + other.V[i]).ToArray() };
}

/// <summary>
/// An independent, deliberately plain re-statement of the reference autoencoder (batch 1) in double precision over
/// arrays, loop by loop from the reference's definitions: the golden values the TorchSharp model is checked against.
/// </summary>
internal sealed class NaiveAutoEncoder(AutoEncoderParams p, IReadOnlyDictionary<string, double[]> w)
{
    /// <summary>image [3, H, W] → scale·(mean − shift), the mean being the first z channels of the encoder's output.</summary>
    public FeatureMap Encode(FeatureMap image)
    {
        var h = Conv("encoder.conv_in", image, 1, 1, 1);
        for (var i = 0; i < p.ChMult.Length; i++)
        {
            for (var j = 0; j < p.NumResBlocks; j++) h = Resnet($"encoder.down.{i}.block.{j}", h);
            // Downsample: zeros on the right and bottom only, then a 3×3 convolution with stride 2 and no padding of its own.
            if (i != p.ChMult.Length - 1) h = Conv($"encoder.down.{i}.downsample.conv", h, 2, 0, 1);
        }
        h = Mid("encoder.mid", h);
        var moments = Conv("encoder.conv_out", Swish(GroupNorm("encoder.norm_out", h)), 1, 1, 1);
        var mean = new FeatureMap(p.ZChannels, moments.H, moments.W, moments.V[..(p.ZChannels * moments.H * moments.W)]);
        return mean.Map(v => p.ScaleFactor * (v - p.ShiftFactor));
    }

    /// <summary>z [z, h, w] → pixels [out_ch, 2^(levels−1)·h, 2^(levels−1)·w].</summary>
    public FeatureMap Decode(FeatureMap z)
    {
        var h = Conv("decoder.conv_in", z.Map(v => v / p.ScaleFactor + p.ShiftFactor), 1, 1, 1);
        h = Mid("decoder.mid", h);
        for (var i = p.ChMult.Length - 1; i >= 0; i--)
        {
            for (var j = 0; j < p.NumResBlocks + 1; j++) h = Resnet($"decoder.up.{i}.block.{j}", h);
            if (i != 0) h = Conv($"decoder.up.{i}.upsample.conv", Nearest2(h), 1, 1, 1);
        }
        return Conv("decoder.conv_out", Swish(GroupNorm("decoder.norm_out", h)), 1, 1, 1);
    }

    private FeatureMap Mid(string name, FeatureMap x) =>
        Resnet($"{name}.block_2", Attention($"{name}.attn_1", Resnet($"{name}.block_1", x)));

    private FeatureMap Resnet(string name, FeatureMap x)
    {
        var h = Conv($"{name}.conv1", Swish(GroupNorm($"{name}.norm1", x)), 1, 1, 1);
        h = Conv($"{name}.conv2", Swish(GroupNorm($"{name}.norm2", h)), 1, 1, 1);
        var skip = w.ContainsKey($"{name}.nin_shortcut.weight") ? Conv($"{name}.nin_shortcut", x, 1, 0, 0) : x;
        return skip.Plus(h);
    }

    /// <summary>One head over all H·W positions, softmax(q·k/√C)·v, then proj_out and the residual.</summary>
    private FeatureMap Attention(string name, FeatureMap x)
    {
        var normed = GroupNorm($"{name}.norm", x);
        var (q, k, v) = (Conv($"{name}.q", normed, 1, 0, 0), Conv($"{name}.k", normed, 1, 0, 0), Conv($"{name}.v", normed, 1, 0, 0));
        var n = x.H * x.W;
        var attended = FeatureMap.Zeros(x.C, x.H, x.W);
        for (var i = 0; i < n; i++)
        {
            var scores = new double[n];
            for (var j = 0; j < n; j++)
            {
                for (var c = 0; c < x.C; c++) scores[j] += q.V[c * n + i] * k.V[c * n + j];
                scores[j] /= Math.Sqrt(x.C);
            }
            var max = scores.Max();
            var weights = scores.Select(s => Math.Exp(s - max)).ToArray();
            var total = weights.Sum();
            for (var c = 0; c < x.C; c++)
                for (var j = 0; j < n; j++) attended.V[c * n + i] += weights[j] / total * v.V[c * n + j];
        }
        return x.Plus(Conv($"{name}.proj_out", attended, 1, 0, 0));
    }

    /// <summary>32 groups of C/32 channels, each normalised over its channels and positions (biased variance, eps 1e-6).</summary>
    private FeatureMap GroupNorm(string name, FeatureMap x)
    {
        var (gamma, beta) = (w[$"{name}.weight"], w[$"{name}.bias"]);
        var perGroup = x.C / 32;
        var plane = x.H * x.W;
        var y = FeatureMap.Zeros(x.C, x.H, x.W);
        for (var g = 0; g < 32; g++)
        {
            var values = x.V.Skip(g * perGroup * plane).Take(perGroup * plane).ToArray();
            var mean = values.Average();
            var variance = values.Select(v => (v - mean) * (v - mean)).Average();
            for (var c = g * perGroup; c < (g + 1) * perGroup; c++)
                for (var i = 0; i < plane; i++)
                    y.V[c * plane + i] = (x.V[c * plane + i] - mean) / Math.Sqrt(variance + 1e-6) * gamma[c] + beta[c];
        }
        return y;
    }

    private static FeatureMap Swish(FeatureMap x) => x.Map(v => v / (1 + Math.Exp(-v)));

    private static FeatureMap Nearest2(FeatureMap x)
    {
        var y = FeatureMap.Zeros(x.C, 2 * x.H, 2 * x.W);
        for (var c = 0; c < x.C; c++)
            for (var yy = 0; yy < y.H; yy++)
                for (var xx = 0; xx < y.W; xx++) y[c, yy, xx] = x[c, yy / 2, xx / 2];
        return y;
    }

    /// <summary>
    /// A square convolution with its bias; <paramref name="before"/> zeros above and left, <paramref name="after"/> below and
    /// right. The kernel size follows from the weight's length (out × in × k × k).
    /// </summary>
    private FeatureMap Conv(string name, FeatureMap x, int stride, int before, int after)
    {
        var (kernel, bias) = (w[$"{name}.weight"], w[$"{name}.bias"]);
        var outC = bias.Length;
        var k = (int)Math.Round(Math.Sqrt(kernel.Length / (double)(outC * x.C)));
        var y = FeatureMap.Zeros(outC, (x.H + before + after - k) / stride + 1, (x.W + before + after - k) / stride + 1);
        for (var o = 0; o < outC; o++)
            for (var oy = 0; oy < y.H; oy++)
                for (var ox = 0; ox < y.W; ox++)
                {
                    var sum = bias[o];
                    for (var c = 0; c < x.C; c++)
                        for (var ky = 0; ky < k; ky++)
                            for (var kx = 0; kx < k; kx++)
                            {
                                var (iy, ix) = (oy * stride + ky - before, ox * stride + kx - before);
                                if (iy >= 0 && iy < x.H && ix >= 0 && ix < x.W) sum += kernel[((o * x.C + c) * k + ky) * k + kx] * x[c, iy, ix];
                            }
                    y[o, oy, ox] = sum;
                }
        return y;
    }
}
