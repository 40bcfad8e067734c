using System.Text.Json;
using System.Text.Json.Serialization;

namespace Likeness.Engine.Flux;

/// <summary>The transformer's configuration, as the reference <c>FluxParams</c> (snake_case JSON, 13 keys).</summary>
public sealed record FluxParams(
    [property: JsonPropertyName("in_channels")] int InChannels,
    [property: JsonPropertyName("out_channels")] int OutChannels,
    [property: JsonPropertyName("vec_in_dim")] int VecInDim,
    [property: JsonPropertyName("context_in_dim")] int ContextInDim,
    [property: JsonPropertyName("hidden_size")] int HiddenSize,
    [property: JsonPropertyName("mlp_ratio")] double MlpRatio,
    [property: JsonPropertyName("num_heads")] int NumHeads,
    [property: JsonPropertyName("depth")] int Depth,
    [property: JsonPropertyName("depth_single_blocks")] int DepthSingleBlocks,
    [property: JsonPropertyName("axes_dim")] int[] AxesDim,
    [property: JsonPropertyName("theta")] double Theta,
    [property: JsonPropertyName("qkv_bias")] bool QkvBias,
    [property: JsonPropertyName("guidance_embed")] bool GuidanceEmbed)
{
    public int HeadDim => HiddenSize / NumHeads;
    public int MlpHidden => (int)(HiddenSize * MlpRatio);

    /// <summary>FLUX.1 [dev]: 19 double and 38 single blocks, 3072 wide, guidance-distilled.</summary>
    public static readonly FluxParams Dev = new(64, 64, 768, 4096, 3072, 4.0, 24, 19, 38, [16, 56, 56], 10_000, true, true);

    /// <summary>FLUX.1 [schnell]: as dev without the guidance embedding.</summary>
    public static readonly FluxParams Schnell = Dev with { GuidanceEmbed = false };

    /// <summary>
    /// The same architecture at small size, for the embedded default and the tests. vec_in_dim and context_in_dim
    /// match the tiny CLIP and T5 encoders.
    /// </summary>
    public static readonly FluxParams Tiny = new(64, 64, 128, 128, 128, 4.0, 4, 2, 4, [8, 12, 12], 10_000, true, true);

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    /// <summary>
    /// Reads the reference form (13 snake_case keys) or a diffusers <c>FluxTransformer2DModel</c> <c>config.json</c>
    /// (hidden = heads × head dim; mlp ratio 4, θ 10,000 and biased q/k/v fixed by diffusers; patch size 1).
    /// </summary>
    public static FluxParams FromJson(string json)
    {
        using var doc = JsonDocument.Parse(json);
        if (doc.RootElement.TryGetProperty("num_single_layers", out _)) return FromDiffusers(doc.RootElement);
        string[] required = ["in_channels", "out_channels", "vec_in_dim", "context_in_dim", "hidden_size", "mlp_ratio", "num_heads",
            "depth", "depth_single_blocks", "axes_dim", "theta", "qkv_bias", "guidance_embed"];
        var missing = required.Where(k => !doc.RootElement.TryGetProperty(k, out _)).ToArray();
        if (missing.Length > 0) throw new ArgumentException("The config lacks " + string.Join(", ", missing) + ".");
        var p = JsonSerializer.Deserialize<FluxParams>(json, Json) ?? throw new ArgumentException("The config is empty.");
        p.Validate();
        return p;
    }

    private static FluxParams FromDiffusers(JsonElement c)
    {
        int Int(string key) => c.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32()
            : throw new ArgumentException($"The diffusers config lacks {key}.");
        if (c.TryGetProperty("patch_size", out var patch) && patch.GetInt32() != 1)
            throw new ArgumentException($"patch_size {patch.GetInt32()} has no reference counterpart (FLUX packs 2×2 outside the transformer).");
        var inChannels = Int("in_channels");
        var outChannels = c.TryGetProperty("out_channels", out var o) && o.ValueKind == JsonValueKind.Number ? o.GetInt32() : inChannels;
        var axes = c.TryGetProperty("axes_dims_rope", out var a) ? a.EnumerateArray().Select(e => e.GetInt32()).ToArray() : [16, 56, 56];
        var guidance = c.TryGetProperty("guidance_embeds", out var g) && g.GetBoolean();
        var p = new FluxParams(inChannels, outChannels, Int("pooled_projection_dim"), Int("joint_attention_dim"),
            Int("num_attention_heads") * Int("attention_head_dim"), 4.0, Int("num_attention_heads"), Int("num_layers"), Int("num_single_layers"),
            axes, 10_000, true, guidance);
        p.Validate();
        return p;
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>The diffusers <c>config.json</c> for these dimensions, or null where diffusers cannot express them.</summary>
    public string? ToDiffusersJson() => MlpRatio != 4.0 || Theta != 10_000 || !QkvBias ? null : JsonSerializer.Serialize(new Dictionary<string, object?>
    {
        ["_class_name"] = "FluxTransformer2DModel",
        ["attention_head_dim"] = HeadDim,
        ["axes_dims_rope"] = AxesDim,
        ["guidance_embeds"] = GuidanceEmbed,
        ["in_channels"] = InChannels,
        ["joint_attention_dim"] = ContextInDim,
        ["num_attention_heads"] = NumHeads,
        ["num_layers"] = Depth,
        ["num_single_layers"] = DepthSingleBlocks,
        ["out_channels"] = OutChannels,
        ["patch_size"] = 1,
        ["pooled_projection_dim"] = VecInDim,
    }, Json);

    public void Validate()
    {
        if (HiddenSize % NumHeads != 0) throw new ArgumentException($"hidden_size {HiddenSize} is not divisible by num_heads {NumHeads}.");
        if (AxesDim.Sum() != HeadDim) throw new ArgumentException($"axes_dim sums to {AxesDim.Sum()}, but the head dim is {HeadDim}.");
        if (AxesDim.Any(d => d % 2 != 0)) throw new ArgumentException("Every axes_dim entry must be even.");
    }
}
