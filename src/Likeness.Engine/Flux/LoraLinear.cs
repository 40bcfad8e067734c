using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Likeness.Engine.Scalars;

namespace Likeness.Engine.Flux;

/// <summary>
/// A linear layer (parameters <c>weight</c> [out, in] and <c>bias</c> [out], as the checkpoint's) that can carry a
/// low-rank adapter: y = W·x + b + strength·(α/r)·B·(A·x). The adapter's tensors are held outside the module's
/// registered state, so the model's state dict stays exactly the base checkpoint's.
/// </summary>
public sealed class LoraLinear : nn.Module<Tensor, Tensor>
{
    public Parameter weight;
    public Parameter? bias;

    /// <summary>The attached adapter, if any. Not a registered component.</summary>
    internal LoraWeights? Adapter { get; set; }

    public long InFeatures { get; }
    public long OutFeatures { get; }

    public LoraLinear(long inFeatures, long outFeatures, bool hasBias = true, Device? device = null) : base(nameof(LoraLinear))
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        weight = new Parameter(zeros(outFeatures, inFeatures, device: device));
        register_parameter("weight", weight);
        if (hasBias)
        {
            bias = new Parameter(zeros(outFeatures, device: device));
            register_parameter("bias", bias);
        }
    }

    public override Tensor forward(Tensor x)
    {
        var y = nn.functional.linear(x, weight, bias);
        if (Adapter is { Merged: false } a && a.Strength != 0)
        {
            // The adapter keeps fp32 weights over a bf16 base: its path runs in fp32 and joins in the base's dtype.
            // (Each operation costs as much to dispatch and record as flux-tiny's small matrices cost to multiply:
            // the scale rides on the add, and same-dtype conversions are skipped.)
            using var scope = NewDisposeScope();
            var input = x.dtype == a.A.dtype ? x : x.to_type(a.A.dtype);
            var up = nn.functional.linear(nn.functional.linear(input, a.A), a.B);
            using var scale = (a.Scale * a.Strength).ToScalar();
            y.add_(up.dtype == y.dtype ? up : up.to_type(y.dtype), scale);
            return y;
        }
        return y;
    }
}

/// <summary>One layer's adapter: A [r, in], B [out, r] (fp32), scale α/r, strength, and whether it is merged into W.</summary>
internal sealed class LoraWeights(Parameter a, Parameter b, float scale) : IDisposable
{
    public Parameter A { get; } = a;
    public Parameter B { get; } = b;
    public float Scale { get; } = scale;
    public float Strength { get; set; } = 1f;
    public bool Merged { get; set; }

    public void Dispose()
    {
        A.Dispose();
        B.Dispose();
    }
}
