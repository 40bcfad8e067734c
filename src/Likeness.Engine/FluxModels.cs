using Likeness.Engine.Autoencoder;
using Likeness.Engine.Flux;
using Likeness.Engine.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine;

/// <summary>One set of a preset's networks on one device, in one dtype.</summary>
public sealed class FluxModels : IDisposable
{
    public FluxPreset Preset { get; }
    public FluxModel Transformer { get; }
    public AutoEncoder Autoencoder { get; }
    public TextConditioner Text { get; }
    public Device Device { get; }
    public ScalarType Dtype { get; }

    private FluxModels(FluxPreset preset, FluxModel transformer, AutoEncoder autoencoder, TextConditioner text, Device device, ScalarType dtype)
    {
        Preset = preset;
        Transformer = transformer;
        Autoencoder = autoencoder;
        Text = text;
        Device = device;
        Dtype = dtype;
    }

    /// <summary>
    /// flux-tiny reads its pretrained weights from <paramref name="modelsFolder"/> or, by default, the folder shipped
    /// beside the engine (<see cref="TinyWeightsFolder"/>); <see cref="FluxPreset.TinyRandom"/> is made from its fixed
    /// seed (the same weights on every machine). flux-dev and flux-schnell read
    /// their published weights from <paramref name="modelsFolder"/> (see <see cref="ModelFolder"/>), at the
    /// dimensions the folder states (<see cref="ModelConfigs"/>); without them this fails and says which files are
    /// missing. <paramref name="dtype"/> defaults to bf16 on CUDA, fp32 on CPU.
    /// </summary>
    public static FluxModels Load(FluxPreset preset, string? modelsFolder, Device? device = null, ScalarType? dtype = null)
    {
        device ??= CPU;
        var type = dtype ?? Precision.For(device, null);
        if (preset.IsTiny && preset.Pretrained) return LoadTiny(preset, modelsFolder ?? FluxPreset.TinyWeights, device, type);
        if (preset.IsTiny)
        {
            var transformer = FluxModel.CreateInitialized(preset.Transformer, preset.InitSeed, device, type);
            var ae = AutoEncoder.CreateInitialized(preset.Autoencoder, preset.InitSeed + 1, device, type);
            var text = TextConditioner.CreateTiny(preset.InitSeed + 2, preset.MaxT5Tokens, device, type);
            transformer.eval();
            ae.eval();
            return new FluxModels(preset, transformer, ae, text, device, type);
        }

        var files = ModelFolder.Locate(preset, modelsFolder);
        // The folder's own dimensions (config.json files, or the transformer file's shapes) over the preset's.
        preset = ModelConfigs.Resolve(preset, files);
        FluxModel? model = null;
        AutoEncoder? autoencoder = null;
        try
        {
            // One network at a time, each straight into its dtype and device, tensor by tensor from the mapped files.
            model = new FluxModel(preset.Transformer, device, type);
            model.LoadWeights(files.Transformer);
            model.eval();
            autoencoder = new AutoEncoder(preset.Autoencoder, device, type);
            autoencoder.LoadWeights(files.Autoencoder);
            autoencoder.eval();
            var text = TextConditioner.Load(files.Folder, preset.T5, preset.Clip, preset.MaxT5Tokens, device, type);
            return new FluxModels(preset, model, autoencoder, text, device, type);
        }
        catch
        {
            model?.Dispose();
            autoencoder?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The pretrained flux-tiny from its weights folder (<see cref="TinyWeightsFolder"/>); the autoencoder's scale and
    /// shift are the ones measured for it, stored in its file.
    /// </summary>
    private static FluxModels LoadTiny(FluxPreset preset, string folder, Device device, ScalarType type)
    {
        var files = TinyWeightsFolder.Locate(folder);
        preset = preset with { Autoencoder = TinyWeightsFolder.AutoencoderParams(files.Autoencoder, preset.Autoencoder) };
        var transformer = new FluxModel(preset.Transformer, device, type);
        var ae = new AutoEncoder(preset.Autoencoder, device, type);
        var t5 = new T5Encoder(preset.T5, device, type);
        var clip = new ClipTextModel(preset.Clip, device, type);
        try
        {
            transformer.LoadWeights(files.Transformer);
            ae.LoadWeights(files.Autoencoder);
            SafeTensors.CheckpointFolder.Load(t5, files.T5);
            SafeTensors.CheckpointFolder.Load(clip, files.Clip);
        }
        catch
        {
            transformer.Dispose();
            ae.Dispose();
            t5.Dispose();
            clip.Dispose();
            throw;
        }
        transformer.eval();
        ae.eval();
        return new FluxModels(preset, transformer, ae, TextConditioner.Tiny(t5, clip, preset.MaxT5Tokens, device), device, type);
    }

    public void Dispose()
    {
        Transformer.Dispose();
        Autoencoder.Dispose();
        Text.Dispose();
    }
}
