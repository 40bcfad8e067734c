using TorchSharp;
using static TorchSharp.torch;
using static Likeness.Engine.Scalars;

namespace Likeness.Engine.Flux;

/// <summary>The reference's math.py: sinusoidal timestep embedding, RoPE, attention.</summary>
public static class FluxMath
{
    /// <summary>
    /// t [B] in [0, 1] → [B, dim]: t' = 1000·t, freqs_i = exp(−ln(10000)·i/half), [cos(t'·f), sin(t'·f)], fp32.
    /// </summary>
    public static Tensor TimestepEmbedding(Tensor t, int dim = 256, double maxPeriod = 10_000, double timeFactor = 1000.0)
    {
        using var scope = NewDisposeScope();
        var half = dim / 2;
        // Same operation order as the reference: at t' = 3500 (guidance 3.5) one ulp of a frequency moves the
        // argument by ~2e-4, so the rounding sequence matters for parity.
        using var halfScalar = half.ToScalar();
        using var logPeriod = (-Math.Log(maxPeriod)).ToScalar();
        using var factor = timeFactor.ToScalar();
        var freqs = exp(arange(Zero, halfScalar, One, ScalarType.Float32, t.device).mul(logPeriod).div(halfScalar));
        var args = t.to_type(ScalarType.Float32).mul(factor).unsqueeze(1) * freqs.unsqueeze(0);
        var embedding = cat([cos(args), sin(args)], dim: -1);
        if (dim % 2 == 1) embedding = cat([embedding, zeros_like(embedding[.., ..1])], dim: -1);
        var dtype = t.dtype is ScalarType.BFloat16 or ScalarType.Float16 or ScalarType.Float64 ? t.dtype : ScalarType.Float32;
        return embedding.to_type(dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// RoPE rotations for positional ids [B, L, axes] → cos + i·sin as complex64 [B, 1, L, headDim/2]. Axis i covers
    /// axesDim[i]/2 frequency pairs with ω_j = θ^(−2j/d_i); the angles are computed in fp64 and rounded to fp32 as the
    /// reference's.
    /// </summary>
    public static Tensor RopeAngles(Tensor ids, int[] axesDim, double theta)
    {
        using var scope = NewDisposeScope();
        var parts = new List<Tensor>();
        for (var i = 0; i < axesDim.Length; i++)
        {
            var d = axesDim[i];
            using var dim = d.ToScalar();
            var scale = arange(Zero, dim, Two, ScalarType.Float64, ids.device).div(dim);
            var omega = pow(theta, scale).reciprocal(); // 1 / θ^scale (TorchSharp's 1.0 / x multiplies the reciprocal by 1)
            var pos = ids[.., .., i].to_type(ScalarType.Float64);
            parts.Add(pos.unsqueeze(-1) * omega); // [B, L, d/2]
        }
        var angles = cat(parts, dim: -1).unsqueeze(1); // [B, 1, L, D/2]
        return complex(cos(angles).to_type(ScalarType.Float32), sin(angles).to_type(ScalarType.Float32)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Rotates adjacent pairs (x[2j], x[2j+1]) of x [B, H, L, D] by the rotations, in fp32: the pair read as the complex
    /// number x[2j] + i·x[2j+1] times cos + i·sin is (x0·cos − x1·sin) + i·(x0·sin + x1·cos), the reference's rotation
    /// with the same products and sums — in one operation instead of ten.
    /// </summary>
    public static Tensor ApplyRope(Tensor x, Tensor rotation)
    {
        using var scope = NewDisposeScope();
        var shape = x.shape;
        var pairs = x.to_type(ScalarType.Float32).reshape(shape[0], shape[1], shape[2], shape[3] / 2, 2);
        return view_as_real(view_as_complex(pairs) * rotation).reshape(shape).to_type(x.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>q, k, v [B, H, L, D] → RoPE on q and k → softmax(qkᵀ/√D)·v → [B, L, H·D].</summary>
    public static Tensor Attention(Tensor q, Tensor k, Tensor v, Tensor pe)
    {
        using var scope = NewDisposeScope();
        var qr = ApplyRope(q, pe);
        var kr = ApplyRope(k, pe);
        var x = nn.functional.scaled_dot_product_attention(qr, kr, v);
        var (b, h, l, d) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        return x.permute(0, 2, 1, 3).reshape(b, l, h * d).MoveToOuterDisposeScope();
    }
}
