using Likeness.Engine.SafeTensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Likeness.Engine.Scalars;

namespace Likeness.Engine.Autoencoder;

/// <summary>GroupNorm(32) → swish → conv3 ×2, with a 1×1 <c>nin_shortcut</c> when the channels change.</summary>
public sealed class ResnetBlock : nn.Module<Tensor, Tensor>
{
    private readonly GroupNorm norm1;
    private readonly Conv2d conv1;
    private readonly GroupNorm norm2;
    private readonly Conv2d conv2;
    private readonly Conv2d? nin_shortcut;

    public ResnetBlock(int inChannels, int outChannels, Device? device) : base(nameof(ResnetBlock))
    {
        norm1 = nn.GroupNorm(32, inChannels, eps: 1e-6, device: device);
        conv1 = nn.Conv2d(inChannels, outChannels, 3, padding: 1, device: device);
        norm2 = nn.GroupNorm(32, outChannels, eps: 1e-6, device: device);
        conv2 = nn.Conv2d(outChannels, outChannels, 3, padding: 1, device: device);
        if (inChannels != outChannels) nin_shortcut = nn.Conv2d(inChannels, outChannels, 1, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = conv1.forward(nn.functional.silu(norm1.forward(x)));
        h = conv2.forward(nn.functional.silu(norm2.forward(h)));
        var skip = nin_shortcut is null ? x : nin_shortcut.forward(x);
        return skip.add(h, One).MoveToOuterDisposeScope();
    }
}

/// <summary>Single-head spatial self-attention with 1×1 convolutions <c>q, k, v, proj_out</c>.</summary>
public sealed class AttnBlock : nn.Module<Tensor, Tensor>
{
    private readonly GroupNorm norm;
    private readonly Conv2d q;
    private readonly Conv2d k;
    private readonly Conv2d v;
    private readonly Conv2d proj_out;

    public AttnBlock(int channels, Device? device) : base(nameof(AttnBlock))
    {
        norm = nn.GroupNorm(32, channels, eps: 1e-6, device: device);
        q = nn.Conv2d(channels, channels, 1, device: device);
        k = nn.Conv2d(channels, channels, 1, device: device);
        v = nn.Conv2d(channels, channels, 1, device: device);
        proj_out = nn.Conv2d(channels, channels, 1, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = norm.forward(x);
        var (b, c, height, width) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        // (B, C, H, W) → (B, 1, HW, C): one head over every position.
        Tensor Tokens(Tensor t) => t.reshape(b, 1, c, height * width).transpose(2, 3);
        var attended = nn.functional.scaled_dot_product_attention(Tokens(q.forward(h)), Tokens(k.forward(h)), Tokens(v.forward(h)));
        var back = attended.transpose(2, 3).reshape(b, c, height, width);
        return x.add(proj_out.forward(back), One).MoveToOuterDisposeScope();
    }
}

/// <summary>Pads (0, 1, 0, 1) then a stride-2 conv3: halves the size.</summary>
public sealed class Downsample : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv;

    public Downsample(int channels, Device? device) : base(nameof(Downsample))
    {
        conv = nn.Conv2d(channels, channels, 3, stride: 2, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var padded = nn.functional.pad(x, [0, 1, 0, 1]);
        return conv.forward(padded);
    }
}

/// <summary>Nearest ×2 then conv3.</summary>
public sealed class Upsample : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv;

    public Upsample(int channels, Device? device) : base(nameof(Upsample))
    {
        conv = nn.Conv2d(channels, channels, 3, padding: 1, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var up = nn.functional.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest);
        return conv.forward(up);
    }
}

/// <summary>The <c>mid</c> of encoder and decoder: block_1, attn_1, block_2.</summary>
public sealed class MidBlock : nn.Module<Tensor, Tensor>
{
    private readonly ResnetBlock block_1;
    private readonly AttnBlock attn_1;
    private readonly ResnetBlock block_2;

    public MidBlock(int channels, Device? device) : base(nameof(MidBlock))
    {
        block_1 = new ResnetBlock(channels, channels, device);
        attn_1 = new AttnBlock(channels, device);
        block_2 = new ResnetBlock(channels, channels, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var a = block_1.forward(x);
        using var b = attn_1.forward(a);
        return block_2.forward(b);
    }
}

/// <summary>One resolution level: <c>block.{j}</c> and, between levels, <c>downsample</c> or <c>upsample</c>.</summary>
public sealed class Level : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<ResnetBlock> block;
    private readonly nn.Module<Tensor, Tensor>? downsample;
    private readonly nn.Module<Tensor, Tensor>? upsample;

    public Level(IEnumerable<ResnetBlock> blocks, Downsample? down, Upsample? up) : base(nameof(Level))
    {
        block = new ModuleList<ResnetBlock>(blocks.ToArray());
        downsample = down;
        upsample = up;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = x;
        foreach (var b in block) h = b.forward(h);
        if (downsample is not null) h = downsample.forward(h);
        if (upsample is not null) h = upsample.forward(h);
        return h.MoveToOuterDisposeScope();
    }
}

public sealed class Encoder : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv_in;
    private readonly ModuleList<Level> down;
    private readonly MidBlock mid;
    private readonly GroupNorm norm_out;
    private readonly Conv2d conv_out;

    public Encoder(AutoEncoderParams p, Device? device) : base(nameof(Encoder))
    {
        conv_in = nn.Conv2d(p.InChannels, p.Ch, 3, padding: 1, device: device);
        var levels = new List<Level>();
        var inCh = p.Ch;
        for (var i = 0; i < p.ChMult.Length; i++)
        {
            var outCh = p.Ch * p.ChMult[i];
            var blocks = new List<ResnetBlock>();
            for (var j = 0; j < p.NumResBlocks; j++)
            {
                blocks.Add(new ResnetBlock(inCh, outCh, device));
                inCh = outCh;
            }
            levels.Add(new Level(blocks, i != p.ChMult.Length - 1 ? new Downsample(inCh, device) : null, null));
        }
        down = new ModuleList<Level>(levels.ToArray());
        mid = new MidBlock(inCh, device);
        norm_out = nn.GroupNorm(32, inCh, eps: 1e-6, device: device);
        conv_out = nn.Conv2d(inCh, 2 * p.ZChannels, 3, padding: 1, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = conv_in.forward(x);
        foreach (var level in down) h = level.forward(h);
        h = mid.forward(h);
        h = conv_out.forward(nn.functional.silu(norm_out.forward(h)));
        return h.MoveToOuterDisposeScope();
    }
}

public sealed class Decoder : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv_in;
    private readonly MidBlock mid;
    private readonly ModuleList<Level> up;
    private readonly GroupNorm norm_out;
    private readonly Conv2d conv_out;

    public Decoder(AutoEncoderParams p, Device? device) : base(nameof(Decoder))
    {
        var blockIn = p.Ch * p.ChMult[^1];
        conv_in = nn.Conv2d(p.ZChannels, blockIn, 3, padding: 1, device: device);
        mid = new MidBlock(blockIn, device);
        // The reference builds the levels from the deepest up and stores them so that up.{i} has ch·ch_mult[i].
        var levels = new Level[p.ChMult.Length];
        for (var i = p.ChMult.Length - 1; i >= 0; i--)
        {
            var outCh = p.Ch * p.ChMult[i];
            var blocks = new List<ResnetBlock>();
            for (var j = 0; j < p.NumResBlocks + 1; j++)
            {
                blocks.Add(new ResnetBlock(blockIn, outCh, device));
                blockIn = outCh;
            }
            levels[i] = new Level(blocks, null, i != 0 ? new Upsample(blockIn, device) : null);
        }
        up = new ModuleList<Level>(levels);
        norm_out = nn.GroupNorm(32, blockIn, eps: 1e-6, device: device);
        conv_out = nn.Conv2d(blockIn, p.OutCh, 3, padding: 1, device: device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor z)
    {
        using var scope = NewDisposeScope();
        var h = mid.forward(conv_in.forward(z));
        for (var i = up.Count - 1; i >= 0; i--) h = up[i].forward(h);
        h = conv_out.forward(nn.functional.silu(norm_out.forward(h)));
        return h.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The 16-channel FLUX autoencoder: encode keeps the mean of the posterior and scales it,
/// z = scale·(mean − shift); decode inverts the scaling. Pixels in [−1, 1], stride 8.
/// </summary>
public sealed class AutoEncoder : nn.Module
{
    public AutoEncoderParams Params { get; }
    private readonly Encoder encoder;
    private readonly Decoder decoder;

    public AutoEncoder(AutoEncoderParams p, Device? device = null, ScalarType dtype = ScalarType.Float32) : base(nameof(AutoEncoder))
    {
        Params = p;
        encoder = new Encoder(p, device).In(dtype);
        decoder = new Decoder(p, device).In(dtype);
        RegisterComponents();
    }

    private ScalarType Dtype => parameters().First().dtype;

    /// <summary>[B, 3, H, W] in [−1, 1] → scaled latents [B, z, H/8, W/8], fp32 whatever the weights' dtype.</summary>
    public Tensor Encode(Tensor x)
    {
        using var scope = NewDisposeScope();
        var moments = encoder.forward(x.to_type(Dtype)).to_type(ScalarType.Float32);
        var mean = moments.narrow(1, 0, Params.ZChannels);
        using var shift = Params.ShiftFactor.ToScalar();
        using var scale = Params.ScaleFactor.ToScalar();
        return mean.sub(shift).mul(scale).MoveToOuterDisposeScope();
    }

    /// <summary>Scaled latents [B, z, h, w] → pixels [B, 3, 8h, 8w], fp32.</summary>
    public Tensor Decode(Tensor z)
    {
        using var scope = NewDisposeScope();
        using var scale = Params.ScaleFactor.ToScalar();
        using var shift = Params.ShiftFactor.ToScalar();
        var unscaled = z.to_type(ScalarType.Float32).div(scale).add(shift, One);
        return decoder.forward(unscaled.to_type(Dtype)).to_type(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>The encoder's raw output [B, 2z, h, w]: the posterior's mean and log-variance (for training).</summary>
    internal Tensor Moments(Tensor x) => encoder.forward(x);

    /// <summary>Unscaled latents (as the encoder gives them) → pixels (for training).</summary>
    internal Tensor DecodeUnscaled(Tensor z) => decoder.forward(z);

    public static AutoEncoder CreateInitialized(AutoEncoderParams p, long seed, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        var ae = new AutoEncoder(p, device);
        // He-style scale for convolutions keeps activations in range through the stack.
        SeededWeights.Fill(ae, seed, (name, parameter) => SeededWeights.NormsAndBiasesFixed(name, parameter,
            (_, w) => Math.Sqrt(1.0 / w.shape.Skip(1).Aggregate(1L, (a, b) => a * b))));
        return ae.In(dtype);
    }

    /// <summary>Loads <c>ae.safetensors</c> (or any file/folder in this key layout), refusing missing or unknown keys.</summary>
    public void LoadWeights(string path) => CheckpointFolder.Load(this, path);
}
