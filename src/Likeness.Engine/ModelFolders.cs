using Likeness.Engine.Autoencoder;

namespace Likeness.Engine;

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

/// <summary>
/// The files of pretrained flux-tiny weights, as <c>likeness engine pretrain</c> writes them: <c>transformer.safetensors</c>
/// (reference keys), <c>ae.safetensors</c> (reference keys; its metadata holds the measured <c>scale_factor</c> and
/// <c>shift_factor</c>), <c>text_encoder.safetensors</c> (the tiny CLIP) and <c>text_encoder_2.safetensors</c> (the tiny T5).
/// </summary>
public sealed record TinyWeightsFolder(string Folder, string Transformer, string Autoencoder, string Clip, string T5)
{
    public static readonly string[] FileNames = ["transformer.safetensors", "ae.safetensors", "text_encoder.safetensors", "text_encoder_2.safetensors"];

    public static TinyWeightsFolder Locate(string folder)
    {
        var missing = FileNames.Where(f => !File.Exists(Path.Combine(folder, f))).ToList();
        if (missing.Count > 0)
            throw new InvalidOperationException($"The flux-tiny weights in {folder} are incomplete: missing {string.Join(", ", missing)}.");
        string In(string name) => Path.Combine(folder, name);
        return new TinyWeightsFolder(folder, In(FileNames[0]), In(FileNames[1]), In(FileNames[2]), In(FileNames[3]));
    }

    /// <summary>The preset's autoencoder with the scale and shift stored in the file.</summary>
    public static AutoEncoderParams AutoencoderParams(string file, AutoEncoderParams preset)
    {
        using var reader = SafeTensors.SafeTensorsFile.Open(file);
        double Factor(string key, double fallback) => reader.Metadata.TryGetValue(key, out var v)
            ? double.Parse(v, System.Globalization.CultureInfo.InvariantCulture) : fallback;
        return preset with { ScaleFactor = Factor("scale_factor", preset.ScaleFactor), ShiftFactor = Factor("shift_factor", preset.ShiftFactor) };
    }
}
