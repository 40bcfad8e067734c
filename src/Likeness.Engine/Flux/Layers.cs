using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Likeness.Engine.Scalars;

namespace Likeness.Engine.Flux;

/// <summary>GELU with the tanh approximation, as the reference's MLPs.</summary>
public sealed class GeluTanh() : nn.Module<Tensor, Tensor>(nameof(GeluTanh))
{
    public override Tensor forward(Tensor x) => x.gelu(GELU.Approximate.tanh);
}

/// <summary><c>in_layer</c> → SiLU → <c>out_layer</c>.</summary>
public sealed class MlpEmbedder : nn.Module<Tensor, Tensor>
{
    private readonly LoraLinear in_layer;
    private readonly LoraLinear out_layer;

    public MlpEmbedder(int inDim, int hiddenDim, Device? device = null) : base(nameof(MlpEmbedder))
    {
        in_layer = new LoraLinear(inDim, hiddenDim, device: device);
        out_layer = new LoraLinear(hiddenDim, hiddenDim, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var h = in_layer.forward(x);
        using var a = nn.functional.silu(h);
        return out_layer.forward(a);
    }
}

/// <summary>RMSNorm over the last dim, computed in fp32, with the parameter called <c>scale</c>.</summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private static readonly Scalar Eps = 1e-6.ToScalar();
    private readonly Parameter scale;

    public RmsNorm(int dim, Device? device = null) : base(nameof(RmsNorm))
    {
        scale = new Parameter(ones(dim, device: device));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var xf = x.to_type(ScalarType.Float32);
        var rrms = rsqrt(xf.pow(Two).mean([-1], keepdim: true).add(Eps, One));
        return ((xf * rrms).to_type(x.dtype) * scale).MoveToOuterDisposeScope();
    }
}

public sealed class QkNorm : nn.Module
{
    private readonly RmsNorm query_norm;
    private readonly RmsNorm key_norm;

    public QkNorm(int headDim, Device? device = null) : base(nameof(QkNorm))
    {
        query_norm = new RmsNorm(headDim, device);
        key_norm = new RmsNorm(headDim, device);
        RegisterComponents();
    }

    public (Tensor Q, Tensor K) forward(Tensor q, Tensor k, Tensor v) =>
        (query_norm.forward(q).to_type(v.dtype), key_norm.forward(k).to_type(v.dtype));
}

/// <summary>Fused qkv projection, QK RMSNorm and output projection (the double blocks' attention).</summary>
public sealed class SelfAttention : nn.Module
{
    public readonly LoraLinear qkv;
    public readonly QkNorm norm;
    public readonly LoraLinear proj;

    public SelfAttention(int dim, int numHeads, bool qkvBias, Device? device = null) : base(nameof(SelfAttention))
    {
        qkv = new LoraLinear(dim, dim * 3, qkvBias, device);
        norm = new QkNorm(dim / numHeads, device);
        proj = new LoraLinear(dim, dim, device: device);
        RegisterComponents();
    }
}

public sealed record ModulationOut(Tensor Shift, Tensor Scale, Tensor Gate);

/// <summary><c>lin</c> on silu(vec) → (shift, scale, gate) once or twice, each [B, 1, hidden].</summary>
public sealed class Modulation : nn.Module
{
    private readonly LoraLinear lin;
    private readonly int _multiplier;

    public Modulation(int dim, bool isDouble, Device? device = null) : base(nameof(Modulation))
    {
        _multiplier = isDouble ? 6 : 3;
        lin = new LoraLinear(dim, _multiplier * dim, device: device);
        RegisterComponents();
    }

    public (ModulationOut First, ModulationOut? Second) forward(Tensor vec)
    {
        using var activated = nn.functional.silu(vec);
        using var projected = lin.forward(activated);
        var chunks = projected.unsqueeze(1).chunk(_multiplier, dim: -1);
        var first = new ModulationOut(chunks[0], chunks[1], chunks[2]);
        return (first, _multiplier == 6 ? new ModulationOut(chunks[3], chunks[4], chunks[5]) : null);
    }
}

/// <summary>Layer norm without affine parameters, eps 1e-6.</summary>
internal static class Norms
{
    public static LayerNorm Plain(int dim, Device? device) => nn.LayerNorm(dim, eps: 1e-6, elementwise_affine: false, device: device);
}

public sealed class DoubleStreamBlock : nn.Module
{
    private readonly int _numHeads;
    public readonly Modulation img_mod;
    public readonly LayerNorm img_norm1;
    public readonly SelfAttention img_attn;
    public readonly LayerNorm img_norm2;
    public readonly Sequential img_mlp;
    public readonly Modulation txt_mod;
    public readonly LayerNorm txt_norm1;
    public readonly SelfAttention txt_attn;
    public readonly LayerNorm txt_norm2;
    public readonly Sequential txt_mlp;

    public DoubleStreamBlock(int hidden, int numHeads, double mlpRatio, bool qkvBias, Device? device = null) : base(nameof(DoubleStreamBlock))
    {
        _numHeads = numHeads;
        var mlpHidden = (int)(hidden * mlpRatio);
        img_mod = new Modulation(hidden, true, device);
        img_norm1 = Norms.Plain(hidden, device);
        img_attn = new SelfAttention(hidden, numHeads, qkvBias, device);
        img_norm2 = Norms.Plain(hidden, device);
        img_mlp = nn.Sequential(new LoraLinear(hidden, mlpHidden, device: device), new GeluTanh(), new LoraLinear(mlpHidden, hidden, device: device));
        txt_mod = new Modulation(hidden, true, device);
        txt_norm1 = Norms.Plain(hidden, device);
        txt_attn = new SelfAttention(hidden, numHeads, qkvBias, device);
        txt_norm2 = Norms.Plain(hidden, device);
        txt_mlp = nn.Sequential(new LoraLinear(hidden, mlpHidden, device: device), new GeluTanh(), new LoraLinear(mlpHidden, hidden, device: device));
        RegisterComponents();
    }

    /// <summary>img [B, Li, H], txt [B, Lt, H], vec [B, H] → (img, txt). Attention runs over txt then img.</summary>
    public (Tensor Img, Tensor Txt) forward(Tensor img, Tensor txt, Tensor vec, Tensor pe)
    {
        using var scope = NewDisposeScope();
        var (imgMod1, imgMod2) = img_mod.forward(vec);
        var (txtMod1, txtMod2) = txt_mod.forward(vec);

        var (imgQ, imgK, imgV) = Project(img_attn, Modulate(img_norm1.forward(img), imgMod1));
        var (txtQ, txtK, txtV) = Project(txt_attn, Modulate(txt_norm1.forward(txt), txtMod1));

        var attn = FluxMath.Attention(cat([txtQ, imgQ], 2), cat([txtK, imgK], 2), cat([txtV, imgV], 2), pe);
        var txtLen = txt.shape[1];
        var txtAttn = attn[.., ..(int)txtLen];
        var imgAttn = attn[.., (int)txtLen..];

        // x + gate·f(x) as one addcmul: the same products and sums as the reference, one operation fewer each.
        var imgOut = img.addcmul(imgMod1.Gate, img_attn.proj.forward(imgAttn), One);
        imgOut = imgOut.addcmul(imgMod2!.Gate, img_mlp.forward(Modulate(img_norm2.forward(imgOut), imgMod2)), One);
        var txtOut = txt.addcmul(txtMod1.Gate, txt_attn.proj.forward(txtAttn), One);
        txtOut = txtOut.addcmul(txtMod2!.Gate, txt_mlp.forward(Modulate(txt_norm2.forward(txtOut), txtMod2)), One);
        return (imgOut.MoveToOuterDisposeScope(), txtOut.MoveToOuterDisposeScope());
    }

    private (Tensor Q, Tensor K, Tensor V) Project(SelfAttention attn, Tensor x)
    {
        var qkv = attn.qkv.forward(x);
        var (b, l) = (qkv.shape[0], qkv.shape[1]);
        // rows are [q | k | v], each head-major: (B, L, 3, H, D) → (3, B, H, L, D)
        var split = qkv.view(b, l, 3, _numHeads, -1).permute(2, 0, 3, 1, 4);
        var (q, k) = attn.norm.forward(split[0], split[1], split[2]);
        return (q, k, split[2]);
    }

    /// <summary>(1 + scale)·normed + shift, the product and the sum as one addcmul.</summary>
    internal static Tensor Modulate(Tensor normed, ModulationOut m)
    {
        using var onePlusScale = m.Scale.add(One, One);
        return m.Shift.addcmul(onePlusScale, normed, One);
    }
}

public sealed class SingleStreamBlock : nn.Module
{
    private readonly int _hidden;
    private readonly int _numHeads;
    private readonly int _mlpHidden;
    public readonly LoraLinear linear1;
    public readonly LoraLinear linear2;
    public readonly QkNorm norm;
    public readonly LayerNorm pre_norm;
    public readonly Modulation modulation;

    public SingleStreamBlock(int hidden, int numHeads, double mlpRatio, Device? device = null) : base(nameof(SingleStreamBlock))
    {
        _hidden = hidden;
        _numHeads = numHeads;
        _mlpHidden = (int)(hidden * mlpRatio);
        linear1 = new LoraLinear(hidden, hidden * 3 + _mlpHidden, device: device);
        linear2 = new LoraLinear(hidden + _mlpHidden, hidden, device: device);
        norm = new QkNorm(hidden / numHeads, device);
        pre_norm = Norms.Plain(hidden, device);
        modulation = new Modulation(hidden, false, device);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, Tensor vec, Tensor pe)
    {
        using var scope = NewDisposeScope();
        var (mod, _) = modulation.forward(vec);
        var xMod = DoubleStreamBlock.Modulate(pre_norm.forward(x), mod);
        var parts = linear1.forward(xMod).split([3L * _hidden, _mlpHidden], dim: -1);
        var (b, l) = (x.shape[0], x.shape[1]);
        var qkv = parts[0].view(b, l, 3, _numHeads, -1).permute(2, 0, 3, 1, 4);
        var (q, k) = norm.forward(qkv[0], qkv[1], qkv[2]);
        var attn = FluxMath.Attention(q, k, qkv[2], pe);
        var output = linear2.forward(cat([attn, parts[1].gelu(GELU.Approximate.tanh)], 2));
        return x.addcmul(mod.Gate, output, One).MoveToOuterDisposeScope();
    }
}

/// <summary><c>final_layer</c>: adaLN (shift, then scale) and the output projection.</summary>
public sealed class LastLayer : nn.Module
{
    public readonly LayerNorm norm_final;
    public readonly LoraLinear linear;
    public readonly Sequential adaLN_modulation;

    public LastLayer(int hidden, int outChannels, Device? device = null) : base(nameof(LastLayer))
    {
        norm_final = Norms.Plain(hidden, device);
        linear = new LoraLinear(hidden, outChannels, device: device);
        adaLN_modulation = nn.Sequential(nn.SiLU(), new LoraLinear(hidden, 2 * hidden, device: device));
        RegisterComponents();
    }

    public Tensor forward(Tensor x, Tensor vec)
    {
        using var scope = NewDisposeScope();
        var chunks = adaLN_modulation.forward(vec).chunk(2, dim: 1);
        var (shift, scale) = (chunks[0], chunks[1]);
        var y = (scale.unsqueeze(1).add(One, One) * norm_final.forward(x)).add(shift.unsqueeze(1), One); // (1 + scale)·norm(x) + shift
        return linear.forward(y).MoveToOuterDisposeScope();
    }
}
