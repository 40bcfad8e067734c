using Likeness.Engine.Flux;
using TorchSharp;
using static TorchSharp.torch;
using static Likeness.Engine.Scalars;

namespace Likeness.Engine.Sampling;

/// <summary>The reference's sampling.py: noise, 2×2 packing, ids, the shifted schedule and the Euler loop.</summary>
public static class FluxSampling
{
    /// <summary>Seeded noise [B, 16, 2⌈H/16⌉, 2⌈W/16⌉]; the same seed gives the same noise.</summary>
    public static Tensor Noise(int batch, int height, int width, long seed, Device? device = null)
    {
        using var generator = new Generator((ulong)seed, torch.device("cpu"));
        var noise = randn([batch, 16, 2 * (long)Math.Ceiling(height / 16.0), 2 * (long)Math.Ceiling(width / 16.0)], generator: generator);
        return device is null || device.type == DeviceType.CPU ? noise : noise.to(device);
    }

    /// <summary>(B, C, H, W) → (B, (H/2)(W/2), C·4) with feature index c·4 + ph·2 + pw.</summary>
    public static Tensor Pack(Tensor latents)
    {
        var (b, c, h, w) = (latents.shape[0], latents.shape[1], latents.shape[2], latents.shape[3]);
        return latents.view(b, c, h / 2, 2, w / 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, h / 2 * (w / 2), c * 4);
    }

    /// <summary>The inverse of <see cref="Pack"/> for an image of <paramref name="height"/> × <paramref name="width"/> pixels.</summary>
    public static Tensor Unpack(Tensor packed, int height, int width)
    {
        var b = packed.shape[0];
        var h = (long)Math.Ceiling(height / 16.0);
        var w = (long)Math.Ceiling(width / 16.0);
        var c = packed.shape[2] / 4;
        return packed.view(b, h, w, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h * 2, w * 2);
    }

    /// <summary>Image ids [B, (h/2)(w/2), 3] = (0, row, col), row-major, for latents h × w.</summary>
    public static Tensor ImageIds(int batch, long latentHeight, long latentWidth, Device? device = null)
    {
        var (h, w) = (latentHeight / 2, latentWidth / 2);
        using var scope = NewDisposeScope();
        using var height = h.ToScalar();
        using var width = w.ToScalar();
        var rows = arange(Zero, height, One, ScalarType.Float32).unsqueeze(1).expand(h, w);
        var cols = arange(Zero, width, One, ScalarType.Float32).unsqueeze(0).expand(h, w);
        var ids = stack([zeros(h, w), rows, cols], dim: -1).reshape(1, h * w, 3).expand(batch, h * w, 3).contiguous();
        return (device is null ? ids : ids.to(device)).MoveToOuterDisposeScope();
    }

    public static Tensor TextIds(int batch, long length, Device? device = null) => zeros([batch, length, 3], device: device);

    /// <summary>t ← e^μ / (e^μ + (1/t − 1)^σ) with σ = 1.</summary>
    public static double TimeShift(double mu, double sigma, double t) => Math.Exp(mu) / (Math.Exp(mu) + Math.Pow(1 / t - 1, sigma));

    /// <summary>μ for a sequence length: a line through (256, 0.5) and (4096, 1.15).</summary>
    public static double Mu(int imageSeqLen, double baseShift = 0.5, double maxShift = 1.15, int x1 = 256, int x2 = 4096)
    {
        var m = (maxShift - baseShift) / (x2 - x1);
        var b = baseShift - m * x1;
        return imageSeqLen * m + b;
    }

    /// <summary>steps + 1 times from 1 to 0; shifted towards high noise for large images when <paramref name="shift"/>.</summary>
    public static double[] Schedule(int steps, int imageSeqLen, bool shift = true, double baseShift = 0.5, double maxShift = 1.15)
    {
        var t = Enumerable.Range(0, steps + 1).Select(i => 1.0 - (double)i / steps).ToArray();
        if (!shift) return t;
        var mu = Mu(imageSeqLen, baseShift, maxShift);
        // t = 0 maps to 0 (the limit of the shift), t = 1 to 1.
        return t.Select(x => x <= 0 ? 0 : x >= 1 ? 1 : TimeShift(mu, 1.0, x)).ToArray();
    }

    /// <summary>
    /// Euler integration of the flow: img += (t_prev − t_curr)·v(img, t_curr). One dispose scope per step.
    /// With <paramref name="unconditional"/> (the empty prompt's txt and vec), classifier-free guidance: each step
    /// runs both prompts as one batch and takes v = v_empty + <paramref name="cfgScale"/>·(v_prompt − v_empty), for
    /// models that learned the empty prompt (caption dropout) and were not guidance-distilled. With
    /// <paramref name="pairOnTwoThreads"/> the two prompts run as two batch-1 passes at once, the empty prompt's on a
    /// second thread (one intra-op thread each): at flux-tiny's size a pass costs mostly per-operation overhead, which a
    /// batch of 2 does not share but a second core does (on the CPU only; the results agree with the batch to float
    /// rounding).
    /// </summary>
    public static Tensor Denoise(FluxModel model, Tensor img, Tensor imgIds, Tensor txt, Tensor txtIds, Tensor vec,
        double[] timesteps, float guidance, CancellationToken cancellationToken = default,
        (Tensor Txt, Tensor Vec)? unconditional = null, float cfgScale = 1f, bool pairOnTwoThreads = false)
    {
        using var noGrad = no_grad();
        var batch = img.shape[0];
        var split = pairOnTwoThreads && unconditional is not null && img.device.type == DeviceType.CPU;
        var passes = unconditional is null || split ? 1 : 2;
        using var guidanceScalar = guidance.ToScalar();
        using var guidanceVec = full([batch * passes], guidanceScalar, img.dtype, img.device);
        var guidanceInput = model.Params.GuidanceEmbed ? guidanceVec : null;
        using var scale = cfgScale.ToScalar();
        using var emptyTxt = unconditional is { } u ? u.Txt.expand(txt.shape) : null;
        using var emptyVec = unconditional is { } v ? v.Vec.expand(vec.shape) : null;
        using var pairedTxt = passes == 2 ? cat([txt, emptyTxt!]) : txt.alias();
        using var pairedVec = passes == 2 ? cat([vec, emptyVec!]) : vec.alias();
        using var pairedImgIds = passes == 2 ? cat([imgIds, imgIds]) : imgIds.alias();
        using var pairedTxtIds = passes == 2 ? cat([txtIds, txtIds]) : txtIds.alias();

        // v(x, t): one pass, the pair as one batch, or the pair side by side with the empty prompt's on a second thread
        // (grad mode, the intra-op thread count and dispose scopes are per thread, so the worker sets its own).
        Tensor Velocity(Tensor x, Tensor t)
        {
            if (unconditional is null) return model.forward(x, pairedImgIds, pairedTxt, pairedTxtIds, t, pairedVec, guidanceInput);
            if (!split)
            {
                var pred = model.forward(cat([x, x]), pairedImgIds, pairedTxt, pairedTxtIds, t, pairedVec, guidanceInput);
                var (conditional, empty) = (pred.narrow(0, 0, batch), pred.narrow(0, batch, batch));
                return empty.add(conditional - empty, scale);
            }
            var emptyPass = Task.Run(() =>
            {
                EngineThreads.Apply(CPU, 1);
                using var workerNoGrad = no_grad();
                using var workerScope = NewDisposeScope();
                return model.forward(x, imgIds, emptyTxt!, txtIds, t, emptyVec!, guidanceInput).MoveToOuterDisposeScope();
            });
            Tensor prompted;
            try
            {
                prompted = model.forward(x, imgIds, txt, txtIds, t, vec, guidanceInput);
            }
            catch
            {
                // The worker still reads this step's tensors: let it finish before they are freed.
                ((IAsyncResult)emptyPass).AsyncWaitHandle.WaitOne();
                if (emptyPass.IsCompletedSuccessfully) emptyPass.Result.Dispose();
                throw;
            }
            using var emptyPred = emptyPass.GetAwaiter().GetResult();
            return emptyPred.add(prompted - emptyPred, scale);
        }

        var x = img.alias();
        for (var i = 0; i < timesteps.Length - 1; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            using var t = timesteps[i].ToScalar();
            using var dt = (timesteps[i + 1] - timesteps[i]).ToScalar();
            var pred = Velocity(x, full([batch * passes], t, img.dtype, img.device));
            var next = x.add(pred.mul(dt), One);
            x.Dispose();
            x = next.MoveToOuterDisposeScope();
        }
        return x;
    }
}
