using Likeness.Engine.Autoencoder;
using Likeness.Engine.Flux;
using Likeness.Engine.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine;

/// <summary>One set of a preset's networks on one device.</summary>
public sealed class FluxModels : IDisposable
{
    public FluxPreset Preset { get; }
    public FluxModel Transformer { get; }
    public AutoEncoder Autoencoder { get; }
    public TextConditioner Text { get; }
    public Device Device { get; }

    private FluxModels(FluxPreset preset, FluxModel transformer, AutoEncoder autoencoder, TextConditioner text, Device device)
    {
        Preset = preset;
        Transformer = transformer;
        Autoencoder = autoencoder;
        Text = text;
        Device = device;
    }

    /// <summary>
    /// flux-tiny is made from its fixed seed (the same weights on every machine). flux-dev and flux-schnell need
    /// their published weights in <paramref name="modelsFolder"/>; without them this fails and says which files.
    /// </summary>
    public static FluxModels Load(FluxPreset preset, string? modelsFolder, Device? device = null)
    {
        device ??= CPU;
        if (preset.IsTiny)
        {
            var transformer = FluxModel.CreateInitialized(preset.Transformer, preset.InitSeed, device);
            var ae = AutoEncoder.CreateInitialized(preset.Autoencoder, preset.InitSeed + 1, device);
            var text = TextConditioner.CreateTiny(preset.InitSeed + 2, preset.MaxT5Tokens, device);
            transformer.eval();
            ae.eval();
            return new FluxModels(preset, transformer, ae, text, device);
        }
        var folder = modelsFolder ?? "(no --models folder given)";
        string[] needed = [preset.Name == "flux-dev" ? "flux1-dev.safetensors" : "flux1-schnell.safetensors", "ae.safetensors", "text_encoder/", "text_encoder_2/", "tokenizer/", "tokenizer_2/"];
        var missing = modelsFolder is null ? needed : needed.Where(n => !File.Exists(Path.Combine(modelsFolder, n)) && !Directory.Exists(Path.Combine(modelsFolder, n))).ToArray();
        if (missing.Length > 0)
            throw new InvalidOperationException($"The {preset.Name} weights are not in {folder}: missing {string.Join(", ", missing)}.");
        throw new InvalidOperationException(
            $"{preset.Name} needs the T5 SentencePiece and CLIP BPE tokenizers and the full-size encoder loaders, which this build does not have yet; use flux-tiny.");
    }

    public void Dispose()
    {
        Transformer.Dispose();
        Autoencoder.Dispose();
        Text.Dispose();
    }
}
