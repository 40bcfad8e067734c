using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Likeness.Engine.Scalars;

namespace Likeness.Engine.Text;

public sealed record ClipTextParams(int VocabSize, int Hidden, int Layers, int Heads, int Mlp, int MaxPositions = 77)
{
    /// <summary>CLIP ViT-L/14's text model, as FLUX.1 uses it.</summary>
    public static readonly ClipTextParams Large = new(49408, 768, 12, 12, 3072);

    /// <summary>The tiny encoder: hidden 128 is the tiny transformer's vec_in_dim.</summary>
    public static readonly ClipTextParams Tiny = new(261, 128, 2, 4, 512);
}

public sealed class ClipAttention : nn.Module
{
    private readonly int _heads;
    private readonly Linear q_proj;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear out_proj;

    public ClipAttention(ClipTextParams p, Device? device) : base(nameof(ClipAttention))
    {
        _heads = p.Heads;
        q_proj = nn.Linear(p.Hidden, p.Hidden, device: device);
        k_proj = nn.Linear(p.Hidden, p.Hidden, device: device);
        v_proj = nn.Linear(p.Hidden, p.Hidden, device: device);
        out_proj = nn.Linear(p.Hidden, p.Hidden, device: device);
        RegisterComponents();
    }

    public Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var (b, l, h) = (x.shape[0], x.shape[1], x.shape[2]);
        Tensor Heads(Tensor t) => t.view(b, l, _heads, h / _heads).transpose(1, 2);
        var attended = nn.functional.scaled_dot_product_attention(Heads(q_proj.forward(x)), Heads(k_proj.forward(x)), Heads(v_proj.forward(x)), is_casual: true);
        return out_proj.forward(attended.transpose(1, 2).reshape(b, l, h)).MoveToOuterDisposeScope();
    }
}

/// <summary>fc1 → quick-GELU x·σ(1.702x) → fc2.</summary>
public sealed class ClipMlp : nn.Module<Tensor, Tensor>
{
    private static readonly Scalar QuickGelu = 1.702.ToScalar();
    private readonly Linear fc1;
    private readonly Linear fc2;

    public ClipMlp(ClipTextParams p, Device? device) : base(nameof(ClipMlp))
    {
        fc1 = nn.Linear(p.Hidden, p.Mlp, device: device);
        fc2 = nn.Linear(p.Mlp, p.Hidden, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = fc1.forward(x);
        return fc2.forward(h * sigmoid(h.mul(QuickGelu))).MoveToOuterDisposeScope();
    }
}

public sealed class ClipEncoderLayer : nn.Module<Tensor, Tensor>
{
    private readonly ClipAttention self_attn;
    private readonly LayerNorm layer_norm1;
    private readonly ClipMlp mlp;
    private readonly LayerNorm layer_norm2;

    public ClipEncoderLayer(ClipTextParams p, Device? device) : base(nameof(ClipEncoderLayer))
    {
        self_attn = new ClipAttention(p, device);
        layer_norm1 = nn.LayerNorm(p.Hidden, eps: 1e-5, device: device);
        mlp = new ClipMlp(p, device);
        layer_norm2 = nn.LayerNorm(p.Hidden, eps: 1e-5, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = x.add(self_attn.forward(layer_norm1.forward(x)), One);
        return h.add(mlp.forward(layer_norm2.forward(h)), One).MoveToOuterDisposeScope();
    }
}

public sealed class ClipEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly Embedding token_embedding;
    private readonly Embedding position_embedding;

    public ClipEmbeddings(ClipTextParams p, Device? device) : base(nameof(ClipEmbeddings))
    {
        token_embedding = nn.Embedding(p.VocabSize, p.Hidden, device: device);
        position_embedding = nn.Embedding(p.MaxPositions, p.Hidden, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        using var length = ids.shape[1].ToScalar();
        var positions = arange(Zero, length, One, device: ids.device).unsqueeze(0);
        return token_embedding.forward(ids).add(position_embedding.forward(positions), One).MoveToOuterDisposeScope();
    }
}

public sealed class ClipEncoder : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<ClipEncoderLayer> layers;

    public ClipEncoder(ClipTextParams p, Device? device, ScalarType dtype) : base(nameof(ClipEncoder))
    {
        layers = new ModuleList<ClipEncoderLayer>(Enumerable.Range(0, p.Layers).Select(_ => new ClipEncoderLayer(p, device).In(dtype)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = x;
        foreach (var layer in layers) h = layer.forward(h);
        return h.MoveToOuterDisposeScope();
    }
}

public sealed class ClipTextTransformer : nn.Module<Tensor, Tensor>
{
    private readonly ClipEmbeddings embeddings;
    private readonly ClipEncoder encoder;
    private readonly LayerNorm final_layer_norm;

    public ClipTextTransformer(ClipTextParams p, Device? device, ScalarType dtype) : base(nameof(ClipTextTransformer))
    {
        embeddings = new ClipEmbeddings(p, device).In(dtype);
        encoder = new ClipEncoder(p, device, dtype);
        final_layer_norm = nn.LayerNorm(p.Hidden, eps: 1e-5, device: device).In(dtype);
        RegisterComponents();
    }

    /// <summary>ids [B, T] → pooled [B, hidden]: the final state at the first end token (the ids' argmax).</summary>
    public override Tensor forward(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var hidden = final_layer_norm.forward(encoder.forward(embeddings.forward(ids)));
        var eos = ids.argmax(-1);
        using var batch = ids.shape[0].ToScalar();
        var rows = arange(Zero, batch, One, device: ids.device);
        return hidden[rows, eos].MoveToOuterDisposeScope();
    }
}

/// <summary>The CLIP text model in the Hugging Face key layout (<c>text_model.…</c>), returning the pooled output.</summary>
public sealed class ClipTextModel : nn.Module<Tensor, Tensor>
{
    public ClipTextParams Params { get; }
    private readonly ClipTextTransformer text_model;

    public ClipTextModel(ClipTextParams p, Device? device = null, ScalarType dtype = ScalarType.Float32) : base(nameof(ClipTextModel))
    {
        Params = p;
        text_model = new ClipTextTransformer(p, device, dtype);
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids) => text_model.forward(ids);
}
