using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Likeness.Engine.Scalars;

namespace Likeness.Engine.Captioning;

/// <summary>
/// From DaViT's last map to the language model's image tokens (<c>multi_modal_projector</c>): add the learned 2-D
/// position embedding, add the first sinusoidal temporal embedding (one frame), prepend the mean token, project to
/// d_model and normalise. [B, C, h, w] → [B, 1 + h·w, d_model].
/// </summary>
public sealed class Florence2Projector : nn.Module<Tensor, Tensor>
{
    private readonly Linear image_projection;
    private readonly LayerNorm image_proj_norm;
    private readonly LearnedPosition2D image_position_embed;
    private readonly SinusoidalTemporalEmbedding visual_temporal_embed;

    public Florence2Projector(DaVitParams p, int dModel, Device? device = null) : base(nameof(Florence2Projector))
    {
        var dim = p.EmbedDim[^1];
        image_projection = nn.Linear(dim, p.ProjectionDim, hasBias: false, device: device);
        image_proj_norm = nn.LayerNorm(p.ProjectionDim, device: device);
        image_position_embed = new LearnedPosition2D(p.MaxPositionEmbeddings, dim, device);
        visual_temporal_embed = new SinusoidalTemporalEmbedding(p.MaxTemporalEmbeddings, dim, device);
        if (p.ProjectionDim != dModel) throw new InvalidDataException($"Florence-2 projection_dim {p.ProjectionDim} differs from the text d_model {dModel}.");
        RegisterComponents();
    }

    public override Tensor forward(Tensor map)
    {
        using var scope = NewDisposeScope();
        var tokens = map.add(image_position_embed.forward(map.shape[2], map.shape[3]), One).flatten(2).transpose(1, 2);   // [B, hw, C]
        tokens = tokens.add(visual_temporal_embed.First(), One);
        var pooled = tokens.mean([1], keepdim: true);
        var features = cat([pooled, tokens], 1);
        return image_proj_norm.forward(image_projection.forward(features)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Row and column embeddings: channel c of position (y, x) is column_embeddings[x][c] for the first C − C/2
/// channels and row_embeddings[y][c − (C − C/2)] for the rest.
/// </summary>
public sealed class LearnedPosition2D : nn.Module
{
    private readonly Embedding row_embeddings;
    private readonly Embedding column_embeddings;

    public LearnedPosition2D(int positions, int dim, Device? device) : base(nameof(LearnedPosition2D))
    {
        row_embeddings = nn.Embedding(positions, dim / 2, device: device);
        column_embeddings = nn.Embedding(positions, dim - dim / 2, device: device);
        RegisterComponents();
    }

    /// <summary>[C, h, w], to add to a map.</summary>
    public Tensor forward(long h, long w)
    {
        using var scope = NewDisposeScope();
        var device = row_embeddings.weight!.device;
        using var width = w.ToScalar();
        using var height = h.ToScalar();
        var cols = column_embeddings.forward(arange(Zero, width, One, ScalarType.Int64, device));   // [w, Cc]
        var rows = row_embeddings.forward(arange(Zero, height, One, ScalarType.Int64, device));     // [h, Cr]
        var grid = cat([cols.unsqueeze(0).expand(h, w, cols.shape[1]), rows.unsqueeze(1).expand(h, w, rows.shape[1])], -1);
        return grid.permute(2, 0, 1).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Sinusoidal embeddings of frame indices, sine in even and cosine in odd channels, frequencies 10000^(−i/(C/2)).
/// Made here and also read from checkpoints that carry it (as a parameter so that it loads by its key).
/// </summary>
public sealed class SinusoidalTemporalEmbedding : nn.Module
{
    private readonly Parameter pos_idx_to_embed;

    public SinusoidalTemporalEmbedding(int positions, int dim, Device? device) : base(nameof(SinusoidalTemporalEmbedding))
    {
        var table = new float[positions * dim];
        var half = dim / 2;
        for (var p = 0; p < positions; p++)
            for (var i = 0; i < half; i++)
            {
                var freq = (float)Math.Exp(i * -(Math.Log(10000) / half));
                var angle = p * freq;
                table[p * dim + 2 * i] = MathF.Sin(angle);
                table[p * dim + 2 * i + 1] = MathF.Cos(angle);
            }
        pos_idx_to_embed = new Parameter(tensor(table, [positions, dim], device: device), requires_grad: false);
        RegisterComponents();
    }

    /// <summary>The embedding of frame 0 — a photo is one frame.</summary>
    public Tensor First() => pos_idx_to_embed[0];
}
