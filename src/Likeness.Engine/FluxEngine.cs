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
/// The engine behind the service's ports. flux-tiny keeps one set of networks for training and another for
/// generation, so that a training does not hold generation up. A full-size preset keeps a single set (two copies of
/// flux-dev would not fit one GPU): training and generation then take turns, and a training first takes off the
/// adapter the last generation left attached. Each set serves one job at a time.
/// </summary>
public sealed class FluxEngine : IDisposable
{
    private readonly string? _modelsFolder;
    private readonly Lock _generateLock = new();
    private readonly Lock _trainLock = new();
    private FluxModels? _trainModels;
    private FluxModels? _generateModels;
    private LoraAdapter? _adapter;
    private string? _adapterKey;

    public FluxPreset Preset { get; }

    /// <param name="device">Null: see <see cref="DeviceFor"/>.</param>
    /// <param name="precision"><c>auto</c> (or null), <c>fp32</c> or <c>bf16</c> (see <see cref="Precision"/>).</param>
    /// <param name="threads">CPU threads per training or generation; null: <see cref="EngineThreads.DefaultFor"/>.</param>
    public FluxEngine(FluxPreset preset, string? modelsFolder, Device? device = null, string? precision = null, int? threads = null)
    {
        Preset = preset;
        _modelsFolder = modelsFolder;
        Device = device ?? DeviceFor(null);
        Dtype = Precision.For(Device, precision);
        Threads = threads ?? EngineThreads.DefaultFor(preset);
    }

    /// <summary>libtorch's CPU threads for each training and each generation.</summary>
    public int Threads { get; }

    /// <summary>
    /// On a CPU with a second core, one intra-op thread per pass (the tiny preset's policy) runs a classifier-free
    /// step's two passes side by side (<see cref="FluxSampling.Denoise"/>): a flux-tiny step took 20 % less time on the
    /// development box, whose two vCPUs are one core's hardware threads (more where the second core is a core).
    /// </summary>
    private bool SplitGuidancePair => Device.type == DeviceType.CPU && Threads == 1 && Environment.ProcessorCount >= 2;

    /// <summary>
    /// The device for a setting: <c>auto</c> (or unset) is CUDA when libtorch finds a GPU (a build with the CUDA
    /// runtime package), else the CPU; <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c> pin it.
    /// </summary>
    public static Device DeviceFor(string? setting)
    {
        if (string.IsNullOrEmpty(setting) || setting.Equals("auto", StringComparison.OrdinalIgnoreCase)) return cuda.is_available() ? CUDA : CPU;
        if (setting.StartsWith("cuda", StringComparison.OrdinalIgnoreCase) && !cuda.is_available())
            throw new InvalidOperationException($"--engine-device {setting}: libtorch finds no CUDA device (is this the CUDA build, on a GPU node?).");
        return torch.device(setting);
    }

    /// <summary>CUDA when libtorch finds a GPU (a build with the CUDA runtime package), else the CPU.</summary>
    public Device Device { get; }

    /// <summary>bf16 on CUDA and fp32 on the CPU unless the precision says otherwise.</summary>
    public ScalarType Dtype { get; }

    private bool Shared => !Preset.IsTiny;

    public LoraTrainingResult Train(LoraTrainingOptions options, IProgress<LoraTrainingProgress>? progress, CancellationToken ct)
    {
        lock (Shared ? _generateLock : _trainLock)
        {
            EngineThreads.Apply(Device, Threads);
            FluxModels models;
            if (Shared)
            {
                models = _generateModels ??= FluxModels.Load(Preset, _modelsFolder, Device, Dtype);
                UseAdapter(models, null);
            }
            else models = _trainModels ??= FluxModels.Load(Preset, _modelsFolder, Device, Dtype);
            return new LoraTrainer(models).Train(options, progress, ct);
        }
    }

    /// <summary>One image; the same options give the same bytes.</summary>
    public byte[] Generate(GenerateOptions o, CancellationToken ct = default)
    {
        if (o.Width % 16 != 0 || o.Height % 16 != 0) throw new ArgumentException("Width and height must be multiples of 16.");
        lock (_generateLock)
        {
            EngineThreads.Apply(Device, Threads);
            var models = _generateModels ??= FluxModels.Load(Preset, _modelsFolder, Device, Dtype);
            UseAdapter(models, o.AdapterPath);
            if (_adapter is not null && _adapter.Strength != o.LoraStrength)
            {
                _adapter.Unmerge();
                _adapter.Strength = o.LoraStrength;
            }
            // Over fp32 weights the adapter is merged for sampling (W += s·(α/r)·B·A, undone when the adapter or its
            // strength changes): each step then runs the base's operations only — at flux-tiny's size a LoRA'd linear
            // costs three operations more, as much again as the layer itself. Over bf16 weights the adapter stays a
            // separate fp32 path: its small deltas would round away in bf16.
            if (_adapter is not null && Dtype == ScalarType.Float32) _adapter.Merge();

            using var scope = NewDisposeScope();
            var (txt, vec) = models.Text.Encode([o.Prompt]);
            var noise = FluxSampling.Noise(1, o.Height, o.Width, o.Seed, Device);
            var img = FluxSampling.Pack(noise);
            var imgIds = FluxSampling.ImageIds(1, noise.shape[2], noise.shape[3], Device);
            var txtIds = FluxSampling.TextIds(1, txt.shape[1], Device);
            var schedule = FluxSampling.Schedule(o.Steps, (int)img.shape[1], Preset.ShiftSchedule);
            // flux-tiny is not guidance-distilled: its guidance is classifier-free, against the empty prompt (1 = none).
            var unconditional = Preset.ClassifierFreeGuidance && o.Guidance != 1f ? models.Text.EncodeEmpty() : ((Tensor, Tensor)?)null;
            var latents = FluxSampling.Denoise(models.Transformer, img, imgIds, txt, txtIds, vec, schedule, o.Guidance, ct,
                unconditional, o.Guidance, pairOnTwoThreads: SplitGuidancePair);
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
