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
    /// flux-tiny is made from its fixed seed (the same weights on every machine). flux-dev and flux-schnell read
    /// their published weights from <paramref name="modelsFolder"/> (see <see cref="ModelFolder"/>), at the
    /// dimensions the folder states (<see cref="ModelConfigs"/>); without them this fails and says which files are
    /// missing. <paramref name="dtype"/> defaults to bf16 on CUDA, fp32 on CPU.
    /// </summary>
    public static FluxModels Load(FluxPreset preset, string? modelsFolder, Device? device = null, ScalarType? dtype = null)
    {
        device ??= CPU;
        var type = dtype ?? Precision.For(device, null);
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

    public void Dispose()
    {
        Transformer.Dispose();
        Autoencoder.Dispose();
        Text.Dispose();
    }
}

/// <summary>
/// Where a full-size preset's files are in a model folder — the layout of the Hugging Face repository
/// black-forest-labs/FLUX.1-dev (or -schnell) as downloaded: the reference transformer file
/// (<c>flux1-dev.safetensors</c>) or the diffusers <c>transformer/</c> folder, <c>ae.safetensors</c>,
/// <c>text_encoder/</c>, <c>text_encoder_2/</c>, <c>tokenizer/</c>, <c>tokenizer_2/</c>.
/// </summary>
public sealed record ModelFolder(string Folder, string Transformer, string Autoencoder)
{
    public static string TransformerFile(FluxPreset preset) => preset.Name == FluxPreset.Schnell.Name ? "flux1-schnell.safetensors" : "flux1-dev.safetensors";

    public static ModelFolder Locate(FluxPreset preset, string? folder)
    {
        var transformerFile = TransformerFile(preset);
        if (folder is null || !Directory.Exists(folder))
            throw new InvalidOperationException($"{preset.Name} needs its weights: give --models a folder holding {transformerFile} (or transformer/), ae.safetensors, text_encoder/, text_encoder_2/, tokenizer/ and tokenizer_2/{(folder is null ? "" : $"; {folder} does not exist")}.");
        string In(string name) => Path.Combine(folder, name);
        var missing = new List<string>();
        var transformerIsFolder = !File.Exists(In(transformerFile)) && Directory.Exists(In("transformer"));
        if (!transformerIsFolder && !File.Exists(In(transformerFile))) missing.Add($"{transformerFile} (or transformer/)");
        if (!File.Exists(In("ae.safetensors"))) missing.Add("ae.safetensors");
        foreach (var sub in new[] { "text_encoder", "text_encoder_2" })
            if (!Directory.Exists(In(sub)) || !Directory.EnumerateFiles(In(sub), "*.safetensors").Any()) missing.Add($"{sub}/*.safetensors");
        if (!File.Exists(Path.Combine(In("tokenizer"), "vocab.json")) || !File.Exists(Path.Combine(In("tokenizer"), "merges.txt"))) missing.Add("tokenizer/vocab.json + merges.txt");
        if (!File.Exists(Path.Combine(In("tokenizer_2"), "spiece.model")) && !File.Exists(Path.Combine(In("tokenizer_2"), "tokenizer.json"))) missing.Add("tokenizer_2/spiece.model (or tokenizer.json)");
        if (missing.Count > 0) throw new InvalidOperationException($"The {preset.Name} weights in {folder} are incomplete: missing {string.Join(", ", missing)}.");
        return new ModelFolder(folder, transformerIsFolder ? In("transformer") : In(transformerFile), In("ae.safetensors"));
    }
}
