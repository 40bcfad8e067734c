using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Likeness.Engine.Scalars;

namespace Likeness.Engine.Text;

public sealed record T5Params(int VocabSize, int DModel, int NumHeads, int DKv, int DFf, int NumLayers,
    int RelativeBuckets = 32, int RelativeMaxDistance = 128)
{
    /// <summary>T5 v1.1 XXL's encoder, as FLUX.1 uses it.</summary>
    public static readonly T5Params Xxl = new(32128, 4096, 64, 64, 10240, 24);

    /// <summary>The tiny encoder: d_model 128 is the tiny transformer's context_in_dim.</summary>
    public static readonly T5Params Tiny = new(259, 128, 4, 32, 256, 2);
}

/// <summary>RMS layer norm without mean or bias, variance in fp32 (T5's <c>layer_norm</c>).</summary>
public sealed class T5LayerNorm : nn.Module<Tensor, Tensor>
{
    private static readonly Scalar Eps = 1e-6.ToScalar();
    private readonly Parameter weight;

    public T5LayerNorm(int dim, Device? device) : base(nameof(T5LayerNorm))
    {
        weight = new Parameter(ones(dim, device: device));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var variance = x.to_type(ScalarType.Float32).pow(Two).mean([-1], keepdim: true);
        return (weight * (x * rsqrt(variance.add(Eps, One))).to_type(weight.dtype)).MoveToOuterDisposeScope();
    }
}

/// <summary>Self-attention without 1/√d scaling; block 0 owns the relative position bias shared by all layers.</summary>
public sealed class T5Attention : nn.Module
{
    private readonly T5Params _p;
    private readonly Linear q;
    private readonly Linear k;
    private readonly Linear v;
    private readonly Linear o;
    private readonly Embedding? relative_attention_bias;

    public T5Attention(T5Params p, bool hasRelativeBias, Device? device) : base(nameof(T5Attention))
    {
        _p = p;
        var inner = p.NumHeads * p.DKv;
        q = nn.Linear(p.DModel, inner, hasBias: false, device: device);
        k = nn.Linear(p.DModel, inner, hasBias: false, device: device);
        v = nn.Linear(p.DModel, inner, hasBias: false, device: device);
        o = nn.Linear(inner, p.DModel, hasBias: false, device: device);
        if (hasRelativeBias) relative_attention_bias = nn.Embedding(p.RelativeBuckets, p.NumHeads, device: device);
        RegisterComponents();
    }

    /// <summary>Bidirectional buckets: half for each direction, exact below max_exact, logarithmic beyond.</summary>
    public static Tensor RelativeBucket(Tensor relative, int numBuckets, int maxDistance)
    {
        using var scope = NewDisposeScope();
        var half = numBuckets / 2;
        var maxExact = half / 2;
        using var halfScalar = half.ToScalar();
        using var maxExactScalar = maxExact.ToScalar();
        using var logRange = Math.Log((double)maxDistance / maxExact).ToScalar();
        using var logBuckets = (half - maxExact).ToScalar();
        using var lastBucket = (half - 1).ToScalar();
        var buckets = relative.gt(Zero).to_type(ScalarType.Int64).mul(halfScalar);
        var distance = relative.abs();
        var isSmall = distance.lt(maxExactScalar);
        var large = log(distance.to_type(ScalarType.Float32).div(maxExactScalar)).div(logRange).mul(logBuckets)
            .to_type(ScalarType.Int64).add(maxExactScalar, One);
        large = minimum(large, full_like(large, lastBucket));
        return buckets.add(where(isSmall, distance, large), One).MoveToOuterDisposeScope();
    }

    /// <summary>The bias [1, heads, L, L] for a sequence of length L.</summary>
    public Tensor PositionBias(long length, Device device)
    {
        using var scope = NewDisposeScope();
        using var stop = length.ToScalar();
        var context = arange(Zero, stop, One, device: device).unsqueeze(1);
        var memory = arange(Zero, stop, One, device: device).unsqueeze(0);
        var buckets = RelativeBucket(memory - context, _p.RelativeBuckets, _p.RelativeMaxDistance);
        var values = relative_attention_bias!.forward(buckets); // [L, L, heads]
        return values.permute(2, 0, 1).unsqueeze(0).MoveToOuterDisposeScope();
    }

    public Tensor forward(Tensor x, Tensor bias)
    {
        using var scope = NewDisposeScope();
        var (b, l) = (x.shape[0], x.shape[1]);
        Tensor Heads(Tensor t) => t.view(b, l, _p.NumHeads, _p.DKv).transpose(1, 2);
        var scores = Heads(q.forward(x)).matmul(Heads(k.forward(x)).transpose(2, 3)).add(bias, One);
        var weights = scores.to_type(ScalarType.Float32).softmax(-1).to_type(scores.dtype);
        var attended = weights.matmul(Heads(v.forward(x))).transpose(1, 2).reshape(b, l, _p.NumHeads * _p.DKv);
        return o.forward(attended).MoveToOuterDisposeScope();
    }
}

public sealed class T5LayerSelfAttention : nn.Module
{
    public readonly T5Attention SelfAttention;
    private readonly T5LayerNorm layer_norm;

    public T5LayerSelfAttention(T5Params p, bool hasRelativeBias, Device? device) : base(nameof(T5LayerSelfAttention))
    {
        SelfAttention = new T5Attention(p, hasRelativeBias, device);
        layer_norm = new T5LayerNorm(p.DModel, device);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, Tensor bias)
    {
        using var normed = layer_norm.forward(x);
        using var attended = SelfAttention.forward(normed, bias);
        return x.add(attended, One);
    }
}

/// <summary>Gated-GELU feed-forward: wo(gelu_tanh(wi_0·x) * wi_1·x).</summary>
public sealed class T5DenseGatedActDense : nn.Module<Tensor, Tensor>
{
    private readonly Linear wi_0;
    private readonly Linear wi_1;
    private readonly Linear wo;

    public T5DenseGatedActDense(T5Params p, Device? device) : base(nameof(T5DenseGatedActDense))
    {
        wi_0 = nn.Linear(p.DModel, p.DFf, hasBias: false, device: device);
        wi_1 = nn.Linear(p.DModel, p.DFf, hasBias: false, device: device);
        wo = nn.Linear(p.DFf, p.DModel, hasBias: false, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return wo.forward(wi_0.forward(x).gelu(GELU.Approximate.tanh) * wi_1.forward(x)).MoveToOuterDisposeScope();
    }
}

public sealed class T5LayerFF : nn.Module<Tensor, Tensor>
{
    private readonly T5DenseGatedActDense DenseReluDense;
    private readonly T5LayerNorm layer_norm;

    public T5LayerFF(T5Params p, Device? device) : base(nameof(T5LayerFF))
    {
        DenseReluDense = new T5DenseGatedActDense(p, device);
        layer_norm = new T5LayerNorm(p.DModel, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var normed = layer_norm.forward(x);
        using var y = DenseReluDense.forward(normed);
        return x.add(y, One);
    }
}

public sealed class T5Block : nn.Module
{
    private readonly ModuleList<nn.Module> layer;

    public T5Block(T5Params p, bool hasRelativeBias, Device? device) : base(nameof(T5Block))
    {
        layer = new ModuleList<nn.Module>(new T5LayerSelfAttention(p, hasRelativeBias, device), new T5LayerFF(p, device));
        RegisterComponents();
    }

    public T5LayerSelfAttention Attention => (T5LayerSelfAttention)layer[0];

    public Tensor forward(Tensor x, Tensor bias)
    {
        using var attended = Attention.forward(x, bias);
        return ((T5LayerFF)layer[1]).forward(attended);
    }
}

public sealed class T5Stack : nn.Module
{
    public readonly ModuleList<T5Block> block;
    private readonly T5LayerNorm final_layer_norm;

    public T5Stack(T5Params p, Device? device, ScalarType dtype) : base(nameof(T5Stack))
    {
        block = new ModuleList<T5Block>(Enumerable.Range(0, p.NumLayers).Select(i => new T5Block(p, i == 0, device).In(dtype)).ToArray());
        final_layer_norm = new T5LayerNorm(p.DModel, device).In(dtype);
        RegisterComponents();
    }

    public Tensor forward(Tensor embedded)
    {
        using var scope = NewDisposeScope();
        var bias = block[0].Attention.SelfAttention.PositionBias(embedded.shape[1], embedded.device);
        var h = embedded;
        foreach (var b in block) h = b.forward(h, bias);
        return final_layer_norm.forward(h).MoveToOuterDisposeScope();
    }
}

/// <summary>The T5 v1.1 encoder in the Hugging Face key layout (<c>shared</c>, <c>encoder.block.{i}.layer.{0,1}…</c>).</summary>
public sealed class T5Encoder : nn.Module<Tensor, Tensor>
{
    public T5Params Params { get; }
    private readonly Embedding shared;
    private readonly T5Stack encoder;

    /// <summary>Builds the encoder in <paramref name="dtype"/> block by block (T5-XXL is 19 GB in fp32).</summary>
    public T5Encoder(T5Params p, Device? device = null, ScalarType dtype = ScalarType.Float32) : base(nameof(T5Encoder))
    {
        Params = p;
        shared = nn.Embedding(p.VocabSize, p.DModel, device: device).In(dtype);
        encoder = new T5Stack(p, device, dtype);
        RegisterComponents();
    }

    /// <summary>ids [B, T] → hidden states [B, T, d_model].</summary>
    public override Tensor forward(Tensor ids)
    {
        using var embedded = shared.forward(ids);
        return encoder.forward(embedded);
    }
}
