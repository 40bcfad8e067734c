using System.Globalization;
using Likeness.Engine.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Pretraining;

public sealed record FluxTinyPretrainOptions(AutoencoderPretrainOptions Autoencoder, TransformerPretrainOptions Transformer, string Phase = "all");

public sealed record FluxTinyPretrainReport(double HeldOutPsnr, string? OutputFolder, long OutputBytes)
{
    public override string ToString() => OutputFolder is null
        ? string.Create(CultureInfo.InvariantCulture, $"autoencoder: held-out PSNR {HeldOutPsnr:F2} dB")
        : string.Create(CultureInfo.InvariantCulture, $"autoencoder: held-out PSNR {HeldOutPsnr:F2} dB; weights: {OutputFolder} ({OutputBytes / 1e6:F1} MB)");
}

/// <summary>
/// <c>likeness engine pretrain</c>: flux-tiny's weights from composed emoji scenes — the autoencoder first, then the
/// transformer with the text encoders on the frozen autoencoder's latents. Each phase checkpoints into the work
/// folder and a rerun resumes; everything random comes from the seed. The output folder is a flux-tiny weights
/// folder (<see cref="TinyWeightsFolder"/>), stored in fp16.
/// </summary>
public sealed class FluxTinyPretrainer(EmojiCatalog catalog, string workFolder, long seed, FluxPreset start)
{
    public FluxTinyPretrainReport Run(FluxTinyPretrainOptions o, string outputFolder, IProgress<PretrainProgress>? progress, CancellationToken ct)
    {
        var size = FluxPreset.Tiny.BaseResolution;
        var training = new SceneComposer(catalog.Training, size);
        var heldOut = new SceneComposer(catalog.HeldOut, size);
        var autoencoderPhase = new AutoencoderPretrainer(training, heldOut, seed, workFolder);
        using var ae = autoencoderPhase.Run(o.Autoencoder, start.Autoencoder, start.InitSeed + 1, progress, ct);
        var psnr = autoencoderPhase.HeldOutPsnr(ae, o.Autoencoder.EvalScenes / 2);
        if (o.Phase == "autoencoder") return new FluxTinyPretrainReport(psnr, null, 0);

        var result = new TransformerPretrainer(training, seed, workFolder, FluxPreset.Tiny).Run(o.Transformer, ae, progress, ct);
        using (result.Transformer)
        using (result.T5)
        using (result.Clip)
        {
            Directory.CreateDirectory(outputFolder);
            var names = TinyWeightsFolder.FileNames;
            var provenance = new Dictionary<string, string>
            {
                ["format"] = "pt",
                ["pretrained_by"] = "likeness engine pretrain",
                ["seed"] = seed.ToString(CultureInfo.InvariantCulture),
                ["ae_steps"] = o.Autoencoder.Steps.ToString(CultureInfo.InvariantCulture),
                ["transformer_steps"] = o.Transformer.Steps.ToString(CultureInfo.InvariantCulture),
            };
            Save(Path.Combine(outputFolder, names[0]), result.Transformer, provenance);
            Save(Path.Combine(outputFolder, names[1]), ae, new Dictionary<string, string>(provenance)
            {
                ["scale_factor"] = ae.Params.ScaleFactor.ToString("R", CultureInfo.InvariantCulture),
                ["shift_factor"] = ae.Params.ShiftFactor.ToString("R", CultureInfo.InvariantCulture),
                ["held_out_psnr_db"] = psnr.ToString("F2", CultureInfo.InvariantCulture),
            });
            Save(Path.Combine(outputFolder, names[2]), result.Clip, provenance);
            Save(Path.Combine(outputFolder, names[3]), result.T5, provenance);
            var bytes = names.Sum(n => new FileInfo(Path.Combine(outputFolder, n)).Length);
            return new FluxTinyPretrainReport(psnr, outputFolder, bytes);
        }
    }

    /// <summary>fp16 on disk (half the size; loading converts to the engine's dtype).</summary>
    private static void Save(string path, nn.Module module, IReadOnlyDictionary<string, string> metadata)
    {
        using var scope = NewDisposeScope();
        var tensors = module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().to_type(ScalarType.Float16));
        SafeTensorsFile.Save(path, tensors, metadata);
    }
}
