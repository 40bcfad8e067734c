using Likeness.Engine.Imaging;
using Likeness.Engine.Lora;
using Likeness.Engine.Sampling;
using Likeness.Engine.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine;

public sealed record GenerateOptions(string? AdapterPath, string Prompt, int Width, int Height, long Seed,
    float LoraStrength = 1f, float Guidance = 3.5f, int Steps = 28, EncodedImageFormat Format = EncodedImageFormat.Png);

/// <summary>
/// The engine behind the service's ports: one set of networks for training and another for generation, so that a
/// training does not hold generation up; each set serves one job at a time.
/// </summary>
public sealed class FluxEngine(FluxPreset preset, string? modelsFolder, Device? device = null) : IDisposable
{
    private readonly Lock _trainLock = new();
    private readonly Lock _generateLock = new();
    private FluxModels? _trainModels;
    private FluxModels? _generateModels;
    private LoraAdapter? _adapter;
    private string? _adapterKey;

    public FluxPreset Preset { get; } = preset;

    /// <summary>CUDA when libtorch finds a GPU (a build with the CUDA runtime package), else the CPU.</summary>
    public Device Device { get; } = device ?? (cuda.is_available() ? CUDA : CPU);

    public LoraTrainingResult Train(LoraTrainingOptions options, IProgress<LoraTrainingProgress>? progress, CancellationToken ct)
    {
        lock (_trainLock)
        {
            _trainModels ??= FluxModels.Load(Preset, modelsFolder, Device);
            return new LoraTrainer(_trainModels).Train(options, progress, ct);
        }
    }

    /// <summary>One image; the same options give the same bytes.</summary>
    public byte[] Generate(GenerateOptions o, CancellationToken ct = default)
    {
        if (o.Width % 16 != 0 || o.Height % 16 != 0) throw new ArgumentException("Width and height must be multiples of 16.");
        lock (_generateLock)
        {
            var models = _generateModels ??= FluxModels.Load(Preset, modelsFolder, Device);
            UseAdapter(models, o.AdapterPath);
            if (_adapter is not null) _adapter.Strength = o.LoraStrength;

            using var scope = NewDisposeScope();
            var (txt, vec) = models.Text.Encode([o.Prompt]);
            var noise = FluxSampling.Noise(1, o.Height, o.Width, o.Seed, Device);
            var img = FluxSampling.Pack(noise);
            var imgIds = FluxSampling.ImageIds(1, noise.shape[2], noise.shape[3], Device);
            var txtIds = FluxSampling.TextIds(1, txt.shape[1], Device);
            var schedule = FluxSampling.Schedule(o.Steps, (int)img.shape[1], Preset.ShiftSchedule);
            var latents = FluxSampling.Denoise(models.Transformer, img, imgIds, txt, txtIds, vec, schedule, o.Guidance, ct);
            using var noGrad = no_grad();
            var pixels = models.Autoencoder.Decode(FluxSampling.Unpack(latents, o.Height, o.Width));
            return ImageTensors.Encode(pixels[0], o.Format);
        }
    }

    /// <summary>Keeps the last adapter attached; a different file (or none) swaps it.</summary>
    private void UseAdapter(FluxModels models, string? path)
    {
        var key = path is null ? null : $"{Path.GetFullPath(path)}|{File.GetLastWriteTimeUtc(path).Ticks}";
        if (key == _adapterKey) return;
        _adapter?.Dispose();
        _adapter = null;
        _adapterKey = null;
        if (path is null) return;
        _adapter = LoraAdapter.Load(models.Transformer, path);
        _adapterKey = key;
    }

    public void Dispose()
    {
        _adapter?.Dispose();
        _trainModels?.Dispose();
        _generateModels?.Dispose();
    }
}
