using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Likeness.Engine.Scalars;

namespace Likeness.Engine.Captioning;

/// <summary>
/// BART as Florence-2 uses it (<c>language_model</c>): token embeddings <c>shared</c> (also the encoder's and decoder's
/// <c>embed_tokens</c> and the output head — tied), learned positions offset by 2, a LayerNorm on the embeddings,
/// post-LN layers with GELU, no final LayerNorm.
/// </summary>
public sealed class BartModel : nn.Module
{
    public BartParams Params { get; }
    private readonly Embedding shared;
    private readonly BartEncoder encoder;
    private readonly BartDecoder decoder;

    public BartModel(BartParams p, Device? device = null) : base(nameof(BartModel))
    {
        Params = p;
        shared = nn.Embedding(p.VocabSize, p.DModel, device: device);
        encoder = new BartEncoder(p, device);
        decoder = new BartDecoder(p, device);
        RegisterComponents();
    }

    public Tensor EmbeddingWeight => shared.weight!;

    /// <summary>Token embeddings, scaled by √d_model where the config says so (Florence-2's do not).</summary>
    public Tensor Embed(Tensor ids)
    {
        using var scope = NewDisposeScope();
        var e = shared.forward(ids);
        if (Params.ScaleEmbedding)
        {
            using var s = Math.Sqrt(Params.DModel).ToScalar();
            e = e.mul(s);
        }
        return e.MoveToOuterDisposeScope();
    }

    /// <summary>embeds [B, S, D], mask [B, S] (1 = attend, 0 = padding; null: all) → encoder states [B, S, D].</summary>
    public Tensor Encode(Tensor embeds, Tensor? mask) => encoder.forward(embeds, mask);

    /// <summary>
    /// ids [B, T] at positions past … past+T−1 → logits [B, T, vocab]; appends this step's keys and values to the
    /// cache (which also keeps the encoder's projected keys and values, computed once).
    /// </summary>
    public Tensor Decode(Tensor ids, Tensor encoderStates, Tensor? encoderMask, BartCache cache)
    {
        using var scope = NewDisposeScope();
        var hidden = decoder.forward(Embed(ids), encoderStates, encoderMask, cache);
        return hidden.matmul(shared.weight!.t()).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The decoder's key/value cache, one entry per layer: self-attention keys and values grow a step at a time; the
/// cross-attention ones are made from the encoder states on the first step. Owns its tensors.
/// </summary>
public sealed class BartCache : IDisposable
{
    private readonly Tensor?[] _selfK, _selfV, _crossK, _crossV;

    private readonly int _rowsPerSource;

    /// <param name="rowsPerSource">
    /// Decoder rows per row of encoder states (the beams): the encoder's keys and values are projected once per
    /// picture and repeated, rather than projected again for each beam.
    /// </param>
    public BartCache(int layers, int rowsPerSource = 1)
    {
        (_selfK, _selfV, _crossK, _crossV) = (new Tensor?[layers], new Tensor?[layers], new Tensor?[layers], new Tensor?[layers]);
        _rowsPerSource = rowsPerSource;
    }

    /// <summary>Positions already decoded.</summary>
    public long Length => _selfK[0]?.shape[2] ?? 0;

    internal (Tensor K, Tensor V) AppendSelf(int layer, Tensor k, Tensor v)
    {
        var (oldK, oldV) = (_selfK[layer], _selfV[layer]);
        var nk = oldK is null ? k.clone() : cat([oldK, k], 2);
        var nv = oldV is null ? v.clone() : cat([oldV, v], 2);
        nk.DetachFromDisposeScope();
        nv.DetachFromDisposeScope();
        oldK?.Dispose();
        oldV?.Dispose();
        (_selfK[layer], _selfV[layer]) = (nk, nv);
        return (nk, nv);
    }

    internal (Tensor K, Tensor V) Cross(int layer, Func<(Tensor K, Tensor V)> make)
    {
        if (_crossK[layer] is null)
        {
            var (k, v) = make();
            if (_rowsPerSource > 1) (k, v) = (k.repeat_interleave(_rowsPerSource, 0), v.repeat_interleave(_rowsPerSource, 0));
            k.DetachFromDisposeScope();
            v.DetachFromDisposeScope();
            (_crossK[layer], _crossV[layer]) = (k, v);
        }
        return (_crossK[layer]!, _crossV[layer]!);
    }

    /// <summary>Keeps, for each row of the next step, the self-attention history of the row it continues (beam search).</summary>
    public void Reorder(Tensor rows)
    {
        for (var i = 0; i < _selfK.Length; i++)
        {
            if (_selfK[i] is null) continue;
            var k = _selfK[i]!.index_select(0, rows);
            var v = _selfV[i]!.index_select(0, rows);
            k.DetachFromDisposeScope();
            v.DetachFromDisposeScope();
            _selfK[i]!.Dispose();
            _selfV[i]!.Dispose();
            (_selfK[i], _selfV[i]) = (k, v);
        }
    }

    public void Dispose()
    {
        foreach (var t in _selfK.Concat(_selfV).Concat(_crossK).Concat(_crossV)) t?.Dispose();
    }
}

/// <summary>Multi-head attention with biases, 1/√head_dim scaling, in BART's names.</summary>
public sealed class BartAttention : nn.Module
{
    private readonly int _heads;
    private readonly Linear k_proj;
    private readonly Linear v_proj;
    private readonly Linear q_proj;
    private readonly Linear out_proj;

    public BartAttention(int dim, int heads, Device? device) : base(nameof(BartAttention))
    {
        _heads = heads;
        k_proj = nn.Linear(dim, dim, device: device);
        v_proj = nn.Linear(dim, dim, device: device);
        q_proj = nn.Linear(dim, dim, device: device);
        out_proj = nn.Linear(dim, dim, device: device);
        RegisterComponents();
    }

    /// <summary>[B, L, D] → [B, H, L, D/H].</summary>
    private Tensor Heads(Tensor x) => x.reshape(x.shape[0], x.shape[1], _heads, x.shape[2] / _heads).transpose(1, 2);

    public (Tensor K, Tensor V) KeysValues(Tensor source) => (Heads(k_proj.forward(source)), Heads(v_proj.forward(source)));

    /// <summary>x [B, L, D] attends to keys/values [B, H, S, D/H]; mask additive, broadcast to [B, H, L, S].</summary>
    public Tensor forward(Tensor x, Tensor k, Tensor v, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        var (b, l, d) = (x.shape[0], x.shape[1], x.shape[2]);
        var attended = Attention.Softmax(Heads(q_proj.forward(x)), k, v, 1.0 / Math.Sqrt(d / _heads), mask);
        return out_proj.forward(attended.transpose(1, 2).reshape(b, l, d)).MoveToOuterDisposeScope();
    }
}

/// <summary>BART's learned positions: row p + 2 embeds position p (the offset the fairseq model was trained with).</summary>
public sealed class BartPositions : nn.Module
{
    private const int Offset = 2;
    private readonly Parameter weight;

    public BartPositions(int positions, int dim, Device? device) : base(nameof(BartPositions))
    {
        weight = new Parameter(zeros(positions + Offset, dim, device: device), requires_grad: false);
        RegisterComponents();
    }

    /// <summary>[length, D] for positions start … start+length−1.</summary>
    public Tensor forward(long start, long length)
    {
        if (start + length + Offset > weight.shape[0])
            throw new InvalidOperationException($"BART positions reach {start + length}, beyond the {weight.shape[0] - Offset} it has.");
        return weight[(int)(start + Offset)..(int)(start + length + Offset)];
    }
}

public sealed class BartEncoderLayer : nn.Module
{
    private readonly BartAttention self_attn;
    private readonly LayerNorm self_attn_layer_norm;
    private readonly Linear fc1;
    private readonly Linear fc2;
    private readonly LayerNorm final_layer_norm;

    public BartEncoderLayer(BartParams p, Device? device) : base(nameof(BartEncoderLayer))
    {
        self_attn = new BartAttention(p.DModel, p.EncoderHeads, device);
        self_attn_layer_norm = nn.LayerNorm(p.DModel, device: device);
        fc1 = nn.Linear(p.DModel, p.EncoderFfn, device: device);
        fc2 = nn.Linear(p.EncoderFfn, p.DModel, device: device);
        final_layer_norm = nn.LayerNorm(p.DModel, device: device);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        var (k, v) = self_attn.KeysValues(x);
        x = self_attn_layer_norm.forward(x.add(self_attn.forward(x, k, v, mask), One));
        x = final_layer_norm.forward(x.add(fc2.forward(nn.functional.gelu(fc1.forward(x))), One));
        return x.MoveToOuterDisposeScope();
    }
}

public sealed class BartDecoderLayer : nn.Module
{
    private readonly BartAttention self_attn;
    private readonly LayerNorm self_attn_layer_norm;
    private readonly BartAttention encoder_attn;
    private readonly LayerNorm encoder_attn_layer_norm;
    private readonly Linear fc1;
    private readonly Linear fc2;
    private readonly LayerNorm final_layer_norm;

    public BartDecoderLayer(BartParams p, Device? device) : base(nameof(BartDecoderLayer))
    {
        self_attn = new BartAttention(p.DModel, p.DecoderHeads, device);
        self_attn_layer_norm = nn.LayerNorm(p.DModel, device: device);
        encoder_attn = new BartAttention(p.DModel, p.DecoderHeads, device);
        encoder_attn_layer_norm = nn.LayerNorm(p.DModel, device: device);
        fc1 = nn.Linear(p.DModel, p.DecoderFfn, device: device);
        fc2 = nn.Linear(p.DecoderFfn, p.DModel, device: device);
        final_layer_norm = nn.LayerNorm(p.DModel, device: device);
        RegisterComponents();
    }

    public Tensor forward(Tensor x, int layer, Tensor encoderStates, Tensor? encoderMask, Tensor? causal, BartCache cache)
    {
        using var scope = NewDisposeScope();
        var (k, v) = self_attn.KeysValues(x);
        (k, v) = cache.AppendSelf(layer, k, v);
        x = self_attn_layer_norm.forward(x.add(self_attn.forward(x, k, v, causal), One));
        var (ck, cv) = cache.Cross(layer, () => encoder_attn.KeysValues(encoderStates));
        x = encoder_attn_layer_norm.forward(x.add(encoder_attn.forward(x, ck, cv, encoderMask), One));
        x = final_layer_norm.forward(x.add(fc2.forward(nn.functional.gelu(fc1.forward(x))), One));
        return x.MoveToOuterDisposeScope();
    }
}

public sealed class BartEncoder : nn.Module
{
    private readonly BartPositions embed_positions;
    private readonly ModuleList<BartEncoderLayer> layers;
    private readonly LayerNorm layernorm_embedding;

    public BartEncoder(BartParams p, Device? device) : base(nameof(BartEncoder))
    {
        embed_positions = new BartPositions(p.MaxPositionEmbeddings, p.DModel, device);
        layers = new ModuleList<BartEncoderLayer>(Enumerable.Range(0, p.EncoderLayers).Select(_ => new BartEncoderLayer(p, device)).ToArray());
        layernorm_embedding = nn.LayerNorm(p.DModel, device: device);
        RegisterComponents();
    }

    public Tensor forward(Tensor embeds, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        var x = layernorm_embedding.forward(embeds.add(embed_positions.forward(0, embeds.shape[1]), One));
        var additive = mask is null ? null : PaddingMask(mask, x.dtype);
        foreach (var layer in layers) x = layer.forward(x, additive);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>1/0 mask [B, S] → additive [B, 1, 1, S]: 0 where attended, −∞ at padding.</summary>
    internal static Tensor PaddingMask(Tensor mask, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var blocked = mask.eq(Zero).unsqueeze(1).unsqueeze(1);
        return zeros(blocked.shape, dtype, mask.device).masked_fill(blocked, NegativeInfinity).MoveToOuterDisposeScope();
    }

    internal static readonly Scalar NegativeInfinity = float.NegativeInfinity.ToScalar();
}

public sealed class BartDecoder : nn.Module
{
    private readonly BartPositions embed_positions;
    private readonly ModuleList<BartDecoderLayer> layers;
    private readonly LayerNorm layernorm_embedding;

    public BartDecoder(BartParams p, Device? device) : base(nameof(BartDecoder))
    {
        embed_positions = new BartPositions(p.MaxPositionEmbeddings, p.DModel, device);
        layers = new ModuleList<BartDecoderLayer>(Enumerable.Range(0, p.DecoderLayers).Select(_ => new BartDecoderLayer(p, device)).ToArray());
        layernorm_embedding = nn.LayerNorm(p.DModel, device: device);
        RegisterComponents();
    }

    public Tensor forward(Tensor embeds, Tensor encoderStates, Tensor? encoderMask, BartCache cache)
    {
        using var scope = NewDisposeScope();
        var (past, length) = (cache.Length, embeds.shape[1]);
        var x = layernorm_embedding.forward(embeds.add(embed_positions.forward(past, length), One));
        var additive = encoderMask is null ? null : BartEncoder.PaddingMask(encoderMask, x.dtype);
        // Row i (position past+i) sees keys 0 … past+i.
        Tensor? causal = null;
        if (length > 1)
        {
            var blocked = ones(length, past + length, dtype: ScalarType.Bool, device: x.device).triu(past + 1);
            causal = zeros(length, past + length, x.dtype, x.device).masked_fill(blocked, BartEncoder.NegativeInfinity);
        }
        for (var i = 0; i < layers.Count; i++) x = layers[i].forward(x, i, encoderStates, additive, causal, cache);
        return x.MoveToOuterDisposeScope();
    }
}
