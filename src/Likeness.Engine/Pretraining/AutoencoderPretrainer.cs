using System.Globalization;
using Likeness.Engine.Autoencoder;
using Likeness.Engine.Imaging;
using Likeness.Engine.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Pretraining;

/// <param name="EvalScenes">Scenes the latents' mean and spread are measured on, and half as many for the held-out PSNR.</param>
/// <param name="Crop">The side of the random crop each scene is trained on: the networks are convolutional, and a quarter of the
/// pixels makes a step four times cheaper, so more scenes are seen in the same time.</param>
public sealed record AutoencoderPretrainOptions(int Steps = 2000, int Batch = 16, int Crop = 64, double LearningRate = 1e-3, double KlWeight = 1e-6,
    int CheckpointEvery = 100, int Warmup = 50, int EvalScenes = 256);

/// <summary>
/// Phase 1: the autoencoder learns to reconstruct composed scenes. It is trained as the variational autoencoder it
/// is (the encoder's 2z channels are the posterior's mean and log-variance; the decoder sees a sample), with
/// L1 + L2 on the pixels and a small KL term, so that the decoder tolerates the imperfect latents a sampler gives
/// it. At the end the latents' mean and spread over training scenes become the shift and scale factors (as FLUX.1's
/// 0.1159 and 0.3611 were measured for its autoencoder), so the transformer sees latents of unit variance.
/// </summary>
public sealed class AutoencoderPretrainer(SceneComposer training, SceneComposer heldOut, long seed, string workFolder)
{
    private static readonly Scalar Half = 0.5.ToScalar(), One = 1.0.ToScalar(), LogVarMin = (-30.0).ToScalar(), LogVarMax = 20.0.ToScalar(),
        PixelMin = (-1.0).ToScalar(), PixelMax = 1.0.ToScalar();

    public string Folder => Path.Combine(workFolder, "autoencoder");
    public string WeightsFile => Path.Combine(Folder, "ae.safetensors");

    /// <summary>Trains (or resumes, or finds finished) and returns the trained autoencoder with its measured factors.</summary>
    public AutoEncoder Run(AutoencoderPretrainOptions o, AutoEncoderParams initial, long initSeed, IProgress<PretrainProgress>? progress, CancellationToken ct)
    {
        if (File.Exists(WeightsFile)) return LoadTrained(initial);
        using var ae = AutoEncoder.CreateInitialized(initial, initSeed);
        var state = new PretrainState(Folder);
        var parameters = ae.parameters().ToList();
        using var optimizer = new Training.AdamW(parameters, o.LearningRate);
        var modules = new Dictionary<string, nn.Module> { ["ae"] = ae };
        var start = state.TryRestore(modules, optimizer);
        using var klWeight = o.KlWeight.ToScalar();
        ae.train();
        state.Run("autoencoder", start, o.Steps, o.LearningRate, o.Warmup, o.CheckpointEvery, optimizer, parameters, modules, null, step =>
        {
            var random = PretrainState.StepRandom(seed, 1, step);
            var images = Crops(training.Batch(random, o.Batch), o.Crop, random);
            using var generator = new Generator((ulong)random.NextInt64(), torch.device("cpu"));
            var moments = ae.Moments(images).chunk(2, 1);
            var (mean, logVar) = (moments[0], moments[1].clamp(LogVarMin, LogVarMax));
            var z = mean.add(logVar.mul(Half).exp().mul(randn(mean.shape, generator: generator)), One);
            var reconstruction = ae.DecodeUnscaled(z);
            var kl = (mean.mul(mean).add(logVar.exp(), One) - logVar - One).mean().mul(Half);
            return nn.functional.l1_loss(reconstruction, images).add(nn.functional.mse_loss(reconstruction, images), One).add(kl, klWeight);
        }, null, progress, ct);
        ae.eval();
        var (shift, scale) = MeasureLatents(ae, o.EvalScenes);
        var tensors = ae.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value);
        SafeTensorsFile.Save(WeightsFile, tensors, new Dictionary<string, string>
        {
            ["shift_factor"] = shift.ToString("R", CultureInfo.InvariantCulture),
            ["scale_factor"] = scale.ToString("R", CultureInfo.InvariantCulture),
        });
        return LoadTrained(initial);
    }

    private AutoEncoder LoadTrained(AutoEncoderParams initial)
    {
        var ae = new AutoEncoder(TinyWeightsFolder.AutoencoderParams(WeightsFile, initial));
        ae.LoadWeights(WeightsFile);
        ae.eval();
        return ae;
    }

    /// <summary>The posterior means' mean and 1/spread over training scenes (one number each, as FLUX.1 has).</summary>
    private (double Shift, double Scale) MeasureLatents(AutoEncoder ae, int count)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var random = PretrainState.StepRandom(seed, 3, 0);
        var means = Enumerable.Range(0, (count + 31) / 32).Select(_ => ae.Moments(training.Batch(random, 32)).chunk(2, 1)[0]).ToList();
        var all = cat(means, 0);
        return (all.mean().item<float>(), 1.0 / all.std().item<float>());
    }

    /// <summary>PSNR (dB, pixels in [0, 1]) of encode → decode over <paramref name="count"/> scenes of held-out objects.</summary>
    public double HeldOutPsnr(AutoEncoder ae, int count = 128) => Psnr(ae, heldOut, PretrainState.StepRandom(seed, 4, 0), count);

    /// <summary>PSNR (dB, pixels in [0, 1]) of encode → decode over <paramref name="count"/> scenes from <paramref name="composer"/>.</summary>
    public static double Psnr(AutoEncoder ae, SceneComposer composer, Random random, int count)
    {
        using var noGrad = no_grad();
        double squared = 0;
        long n = 0;
        for (var done = 0; done < count; done += 16)
        {
            using var scope = NewDisposeScope();
            var images = composer.Batch(random, Math.Min(16, count - done));
            var decoded = ae.Decode(ae.Encode(images)).clamp(PixelMin, PixelMax);
            var error = decoded - images;
            squared += error.mul(error).sum().item<float>() / 4; // [−1, 1] → [0, 1] halves the error
            n += images.numel();
        }
        return 10 * Math.Log10(n / squared);
    }

    /// <summary>One random <paramref name="side"/>² crop of each image.</summary>
    private static Tensor Crops(Tensor images, int side, Random random)
    {
        var size = (int)images.shape[2];
        if (side >= size) return images;
        using var scope = NewDisposeScope();
        var crops = Enumerable.Range(0, (int)images.shape[0]).Select(i =>
        {
            var (y, x) = (random.Next(size - side + 1), random.Next(size - side + 1));
            return images[i].narrow(1, y, side).narrow(2, x, side);
        }).ToList();
        return stack(crops).MoveToOuterDisposeScope();
    }
}
