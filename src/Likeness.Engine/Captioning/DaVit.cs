using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Likeness.Engine.Scalars;

namespace Likeness.Engine.Captioning;

/// <summary>
/// Florence-2's DaViT vision encoder in the checkpoint's names (<c>convs.i.conv</c>, <c>blocks.i.j.spatial_block…</c>).
/// Images [B, 3, H, W] become features [B, C_last, H/32, W/32] (for the 4-stage base and large networks).
/// </summary>
public sealed class DaVit : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<DaVitConvEmbed> convs;
    private readonly ModuleList<ModuleList<DaVitBlock>> blocks;

    public DaVit(DaVitParams p, Device? device = null) : base(nameof(DaVit))
    {
        convs = new ModuleList<DaVitConvEmbed>(Enumerable.Range(0, p.Stages).Select(s => new DaVitConvEmbed(p, s, device)).ToArray());
        blocks = new ModuleList<ModuleList<DaVitBlock>>(Enumerable.Range(0, p.Stages)
            .Select(s => new ModuleList<DaVitBlock>(Enumerable.Range(0, p.Depths[s]).Select(_ => new DaVitBlock(p, s, device)).ToArray())).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var x = pixels;
        for (var s = 0; s < convs.Count; s++)
        {
            x = convs[s].forward(x);
            foreach (var block in blocks[s]) x = block.forward(x);
        }
        return x.MoveToOuterDisposeScope();
    }
}

/// <summary>The stage's strided patch convolution; its LayerNorm comes before it (prenorm) or after it.</summary>
public sealed class DaVitConvEmbed : nn.Module<Tensor, Tensor>
{
    private readonly bool _preNorm;
    private readonly Conv2d conv;
    private readonly LayerNorm norm;

    public DaVitConvEmbed(DaVitParams p, int stage, Device? device) : base(nameof(DaVitConvEmbed))
    {
        _preNorm = p.PatchPrenorm[stage];
        var inChannels = stage == 0 ? p.InChannels : p.EmbedDim[stage - 1];
        conv = nn.Conv2d(inChannels, p.EmbedDim[stage], p.PatchSize[stage], stride: p.PatchStride[stage], padding: p.PatchPadding[stage], device: device);
        norm = nn.LayerNorm(_preNorm ? inChannels : p.EmbedDim[stage], device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        if (_preNorm) x = ChannelsLast(norm, x);
        x = conv.forward(x);
        if (!_preNorm) x = ChannelsLast(norm, x);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>A LayerNorm over the channels of a [B, C, H, W] map.</summary>
    internal static Tensor ChannelsLast(LayerNorm norm, Tensor x) => norm.forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2);
}

/// <summary>One DaViT block: spatial (window) attention, then channel-group attention.</summary>
public sealed class DaVitBlock : nn.Module<Tensor, Tensor>
{
    private readonly DaVitMixingBlock spatial_block;
    private readonly DaVitMixingBlock channel_block;

    public DaVitBlock(DaVitParams p, int stage, Device? device) : base(nameof(DaVitBlock))
    {
        spatial_block = new DaVitMixingBlock(p, stage, spatial: true, device);
        channel_block = new DaVitMixingBlock(p, stage, spatial: false, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return channel_block.forward(spatial_block.forward(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>fc1 → GELU (erf) → fc2, hidden size mlp_ratio × dim.</summary>
public sealed class DaVitMlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1;
    private readonly Linear fc2;

    public DaVitMlp(int dim, double ratio, Device? device) : base(nameof(DaVitMlp))
    {
        fc1 = nn.Linear(dim, (int)(dim * ratio), device: device);
        fc2 = nn.Linear((int)(dim * ratio), dim, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return fc2.forward(nn.functional.gelu(fc1.forward(x))).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Half a DaViT block (<c>spatial_block</c> or <c>channel_block</c>): a depthwise 3×3 convolution added to the map,
/// then a pre-norm residual token mixer — window attention (<c>window_attn</c>) or channel-group attention
/// (<c>channel_attn</c>) — then again a depthwise convolution and a pre-norm residual MLP.
/// </summary>
public sealed class DaVitMixingBlock : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv1;
    private readonly LayerNorm norm1;
    private readonly DaVitWindowAttention? window_attn;
    private readonly DaVitChannelAttention? channel_attn;
    private readonly Conv2d conv2;
    private readonly LayerNorm norm2;
    private readonly DaVitMlp ffn;

    public DaVitMixingBlock(DaVitParams p, int stage, bool spatial, Device? device) : base(nameof(DaVitMixingBlock))
    {
        var dim = p.EmbedDim[stage];
        conv1 = nn.Conv2d(dim, dim, 3, padding: 1, groups: dim, device: device);
        norm1 = nn.LayerNorm(dim, device: device);
        if (spatial) window_attn = new DaVitWindowAttention(dim, p.NumHeads[stage], p.WindowSize, p.QkvBias, device);
        else channel_attn = new DaVitChannelAttention(dim, p.NumGroups[stage], p.QkvBias, device);
        conv2 = nn.Conv2d(dim, dim, 3, padding: 1, groups: dim, device: device);
        norm2 = nn.LayerNorm(dim, device: device);
        ffn = new DaVitMlp(dim, p.MlpRatio, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor map)
    {
        using var scope = NewDisposeScope();
        var (b, c, h, w) = (map.shape[0], map.shape[1], map.shape[2], map.shape[3]);
        var x = conv1.forward(map).add(map, One);
        var tokens = x.flatten(2).transpose(1, 2);                          // [B, HW, C]
        var normed = norm1.forward(tokens);
        tokens = tokens.add(window_attn is not null ? window_attn.forward(normed, h, w) : channel_attn!.forward(normed), One);
        x = tokens.transpose(1, 2).reshape(b, c, h, w);
        x = conv2.forward(x).add(x, One);
        tokens = x.flatten(2).transpose(1, 2);
        tokens = tokens.add(ffn.forward(norm2.forward(tokens)), One);
        return tokens.transpose(1, 2).reshape(b, c, h, w).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Multi-head self-attention inside non-overlapping windows of window_size × window_size tokens; the map is padded
/// with zeros on the right and bottom to whole windows (the padding takes part as keys, as in the reference) and
/// cropped back.
/// </summary>
public sealed class DaVitWindowAttention : nn.Module
{
    private readonly int _heads;
    private readonly int _window;
    private readonly Linear qkv;
    private readonly Linear proj;

    public DaVitWindowAttention(int dim, int heads, int window, bool qkvBias, Device? device) : base(nameof(DaVitWindowAttention))
    {
        (_heads, _window) = (heads, window);
        qkv = nn.Linear(dim, 3 * dim, hasBias: qkvBias, device: device);
        proj = nn.Linear(dim, dim, device: device);
        RegisterComponents();
    }

    /// <summary>tokens [B, H·W, C] in row-major order → [B, H·W, C].</summary>
    public Tensor forward(Tensor tokens, long h, long w)
    {
        using var scope = NewDisposeScope();
        var (b, c) = (tokens.shape[0], tokens.shape[2]);
        long ws = _window;
        var padRight = (ws - w % ws) % ws;
        var padBottom = (ws - h % ws) % ws;
        var map = tokens.reshape(b, h, w, c);
        if (padRight > 0 || padBottom > 0) map = nn.functional.pad(map, [0, 0, 0, padRight, 0, padBottom]);
        var (hp, wp) = (h + padBottom, w + padRight);
        var windows = map.reshape(b, hp / ws, ws, wp / ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c);
        var n = windows.shape[0];
        var parts = qkv.forward(windows).reshape(n, ws * ws, 3, _heads, c / _heads).permute(2, 0, 3, 1, 4);
        var attended = Attention.Softmax(parts[0], parts[1], parts[2], 1.0 / Math.Sqrt(c / _heads));   // [n, heads, T, d]
        var merged = proj.forward(attended.transpose(1, 2).reshape(n, ws * ws, c));
        var back = merged.reshape(b, hp / ws, wp / ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c);
        if (padRight > 0 || padBottom > 0) back = back[.., ..(int)h, ..(int)w, ..];
        return back.reshape(b, h * w, c).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Channel-group attention: within each of the groups, the channels attend to one another across all tokens
/// (queries and keys are [C/G, N]), scaled by 1/√N.
/// </summary>
public sealed class DaVitChannelAttention : nn.Module<Tensor, Tensor>
{
    private readonly int _groups;
    private readonly Linear qkv;
    private readonly Linear proj;

    public DaVitChannelAttention(int dim, int groups, bool qkvBias, Device? device) : base(nameof(DaVitChannelAttention))
    {
        _groups = groups;
        qkv = nn.Linear(dim, 3 * dim, hasBias: qkvBias, device: device);
        proj = nn.Linear(dim, dim, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor tokens)
    {
        using var scope = NewDisposeScope();
        var (b, n, c) = (tokens.shape[0], tokens.shape[1], tokens.shape[2]);
        var parts = qkv.forward(tokens).reshape(b, n, 3, _groups, c / _groups).permute(2, 0, 3, 4, 1);   // [3, B, G, C/G, N]
        var attended = Attention.Softmax(parts[0], parts[1], parts[2], 1.0 / Math.Sqrt(n));             // [B, G, C/G, N]
        return proj.forward(attended.permute(0, 3, 1, 2).reshape(b, n, c)).MoveToOuterDisposeScope();
    }
}

/// <summary>softmax(q·kᵀ·scale + mask)·v, written out because TorchSharp's fused attention takes no scale.</summary>
internal static class Attention
{
    /// <param name="mask">Additive, broadcast to the scores [.., Tq, Tk] (0 or −∞); null for none.</param>
    public static Tensor Softmax(Tensor q, Tensor k, Tensor v, double scale, Tensor? mask = null)
    {
        using var scope = NewDisposeScope();
        using var s = scale.ToScalar();
        var scores = q.mul(s).matmul(k.transpose(-2, -1));
        if (mask is not null) scores = scores.add(mask, One);
        return scores.softmax(-1).matmul(v).MoveToOuterDisposeScope();
    }
}
