using System.Text.Json;
using Likeness.Engine.Autoencoder;
using Likeness.Engine.Flux;
using Likeness.Engine.SafeTensors;
using Likeness.Engine.Text;

namespace Likeness.Engine;

/// <summary>
/// The networks' dimensions as a model folder states them — the <c>config.json</c> files of the Hugging Face layout,
/// or the transformer's own tensor shapes — so that a checkpoint of the FLUX.1 architecture at other sizes (fewer
/// blocks, another text encoder width) loads without a preset of its own. What a folder does not state keeps the
/// preset's value.
/// </summary>
public static class ModelConfigs
{
    /// <summary>The preset with every dimension the folder states; refuses networks that do not fit together.</summary>
    public static FluxPreset Resolve(FluxPreset preset, ModelFolder files)
    {
        var transformer = File.Exists(Path.Combine(files.Transformer, "config.json"))
            ? FluxParams.FromJson(File.ReadAllText(Path.Combine(files.Transformer, "config.json")))
            : File.Exists(files.Transformer) ? InferTransformer(files.Transformer, preset.Transformer) : preset.Transformer;
        var clip = Read(files.Folder, "text_encoder", ReadClip) ?? preset.Clip;
        var t5 = Read(files.Folder, "text_encoder_2", ReadT5) ?? preset.T5;
        var autoencoder = Read(files.Folder, "vae", ReadVae) ?? preset.Autoencoder;
        if (transformer.ContextInDim != t5.DModel || transformer.VecInDim != clip.Hidden)
            throw new InvalidDataException(
                $"The networks in {files.Folder} do not fit together: the transformer takes T5 width {transformer.ContextInDim} and CLIP width " +
                $"{transformer.VecInDim}, the encoders give {t5.DModel} and {clip.Hidden}.");
        if (transformer.InChannels != autoencoder.ZChannels * 4)
            throw new InvalidDataException($"The transformer takes {transformer.InChannels} channels, the autoencoder's 2×2-packed latents have {autoencoder.ZChannels * 4}.");
        return preset with { Transformer = transformer, Clip = clip, T5 = t5, Autoencoder = autoencoder };
    }

    private static T? Read<T>(string folder, string sub, Func<JsonElement, T> read) where T : class
    {
        var path = Path.Combine(folder, sub, "config.json");
        if (!File.Exists(path)) return null;
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        try { return read(doc.RootElement); }
        catch (KeyNotFoundException e) { throw new InvalidDataException($"{path}: {e.Message}"); }
    }

    private static int Int(JsonElement c, string key) =>
        c.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : throw new KeyNotFoundException($"no {key}.");

    private static string? Text(JsonElement c, string key) => c.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    /// <summary>A Hugging Face <c>CLIPTextConfig</c> (CLIP-L's text model uses quick-GELU, as ours does).</summary>
    public static ClipTextParams ReadClip(JsonElement c)
    {
        if (Text(c, "hidden_act") is { } act && act != "quick_gelu")
            throw new NotSupportedException($"The CLIP text model uses {act}; this engine's CLIP uses quick_gelu, as CLIP-L does.");
        return new ClipTextParams(Int(c, "vocab_size"), Int(c, "hidden_size"), Int(c, "num_hidden_layers"), Int(c, "num_attention_heads"),
            Int(c, "intermediate_size"), c.TryGetProperty("max_position_embeddings", out _) ? Int(c, "max_position_embeddings") : 77);
    }

    /// <summary>A Hugging Face <c>T5Config</c> of the v1.1 kind (gated GELU).</summary>
    public static T5Params ReadT5(JsonElement c)
    {
        if (Text(c, "feed_forward_proj") is { } ff && ff != "gated-gelu")
            throw new NotSupportedException($"The T5 encoder uses '{ff}'; this engine's is T5 v1.1's gated-gelu.");
        var defaults = T5Params.Xxl;
        return new T5Params(Int(c, "vocab_size"), Int(c, "d_model"), Int(c, "num_heads"), Int(c, "d_kv"), Int(c, "d_ff"), Int(c, "num_layers"),
            c.TryGetProperty("relative_attention_num_buckets", out _) ? Int(c, "relative_attention_num_buckets") : defaults.RelativeBuckets,
            c.TryGetProperty("relative_attention_max_distance", out _) ? Int(c, "relative_attention_max_distance") : defaults.RelativeMaxDistance);
    }

    /// <summary>
    /// A diffusers <c>AutoencoderKL</c> config (the repository's <c>vae/config.json</c>), which describes the same
    /// network as <c>ae.safetensors</c>: base width and multipliers from <c>block_out_channels</c>.
    /// </summary>
    public static AutoEncoderParams ReadVae(JsonElement c)
    {
        string[] required = ["block_out_channels", "in_channels", "out_channels", "layers_per_block", "latent_channels"];
        var missing = required.Where(k => !c.TryGetProperty(k, out _)).ToArray();
        if (missing.Length > 0) throw new KeyNotFoundException($"no {string.Join(", ", missing)}.");
        var widths = c.GetProperty("block_out_channels").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var ch = widths[0];
        if (widths.Any(w => w % ch != 0)) throw new InvalidDataException("block_out_channels are not multiples of the first.");
        double Number(string key, double fallback) => c.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : fallback;
        var flux = AutoEncoderParams.Flux;
        return new AutoEncoderParams(flux.Resolution, Int(c, "in_channels"), ch, Int(c, "out_channels"), [.. widths.Select(w => w / ch)],
            Int(c, "layers_per_block"), Int(c, "latent_channels"), Number("scaling_factor", flux.ScaleFactor), Number("shift_factor", flux.ShiftFactor));
    }

    /// <summary>
    /// The dimensions of a reference-layout transformer file from its tensor shapes: widths from <c>img_in</c>,
    /// <c>txt_in</c> and <c>vector_in</c>, block counts from the keys, the head width from the QK norm, the MLP ratio
    /// from <c>img_mlp.0</c>. RoPE's axes and θ are not in the file: the fallback's when its axes fit the head width,
    /// else the reference's proportions (⅛, 7⁄16, 7⁄16).
    /// </summary>
    public static FluxParams InferTransformer(string file, FluxParams fallback)
    {
        using var reader = SafeTensorsFile.Open(file);
        var prefix = reader.Keys.Any(k => k.StartsWith(FluxModel.CheckpointPrefix, StringComparison.Ordinal)) ? FluxModel.CheckpointPrefix : "";
        long[] Shape(string key) => reader.Contains(prefix + key) ? reader.Info(prefix + key).Shape
            : throw new InvalidDataException($"{file} lacks '{key}': not a FLUX transformer in the reference layout.");
        int Count(string blocks) => reader.Keys.Where(k => k.StartsWith(prefix + blocks, StringComparison.Ordinal))
            .Select(k => int.Parse(k[(prefix + blocks).Length..].Split('.')[0], System.Globalization.CultureInfo.InvariantCulture)).DefaultIfEmpty(-1).Max() + 1;

        var imgIn = Shape("img_in.weight");
        var hidden = (int)imgIn[0];
        var headDim = (int)Shape("double_blocks.0.img_attn.norm.query_norm.scale")[0];
        var axes = fallback.AxesDim.Sum() == headDim ? fallback.AxesDim : [headDim / 8, headDim * 7 / 16, headDim * 7 / 16];
        var p = new FluxParams((int)imgIn[1], (int)Shape("final_layer.linear.weight")[0], (int)Shape("vector_in.in_layer.weight")[1],
            (int)Shape("txt_in.weight")[1], hidden, (double)Shape("double_blocks.0.img_mlp.0.weight")[0] / hidden, hidden / headDim,
            Count("double_blocks."), Count("single_blocks."), axes, fallback.Theta,
            reader.Contains(prefix + "double_blocks.0.img_attn.qkv.bias"), reader.Contains(prefix + "guidance_in.in_layer.weight"));
        p.Validate();
        return p;
    }
}
