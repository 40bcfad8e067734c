using System.Text.Json;

namespace Likeness.Engine.Captioning;

/// <summary>
/// DaViT, Florence-2's vision encoder: four stages (two in the tiny test network), each a strided convolution
/// (<c>convs.i</c>) followed by <c>depths[i]</c> blocks of window attention then channel-group attention.
/// </summary>
public sealed record DaVitParams(
    int InChannels, int[] Depths, int[] PatchSize, int[] PatchStride, int[] PatchPadding, bool[] PatchPrenorm,
    int[] EmbedDim, int[] NumHeads, int[] NumGroups, int WindowSize, double MlpRatio, bool QkvBias,
    int ProjectionDim, int MaxPositionEmbeddings, int MaxTemporalEmbeddings)
{
    public int Stages => EmbedDim.Length;
}

/// <summary>The BART encoder–decoder that reads the image tokens and the prompt and writes the caption.</summary>
public sealed record BartParams(
    int VocabSize, int DModel, int EncoderLayers, int DecoderLayers, int EncoderHeads, int DecoderHeads,
    int EncoderFfn, int DecoderFfn, int MaxPositionEmbeddings, bool ScaleEmbedding,
    int BosTokenId, int PadTokenId, int EosTokenId, int DecoderStartTokenId, string Activation);

/// <summary>
/// A Florence-2 model's configuration, read from the <c>config.json</c> of a model folder in either of the two layouts
/// published: transformers' native one (<c>florence-community/Florence-2-*</c>: <c>vision_config.embed_dim</c>,
/// <c>max_position_embeddings</c>) or Microsoft's original (<c>microsoft/Florence-2-*</c>: <c>dim_embed</c>,
/// <c>image_pos_embed.max_pos_embeddings</c>, <c>visual_temporal_embedding</c>, the projection size at the top).
/// </summary>
public sealed record Florence2Params(DaVitParams Vision, BartParams Text, int? ImageTokenId)
{
    /// <summary>Image tokens one picture becomes: the pooled token plus one per cell of the last stage.</summary>
    public int ImageTokens(int height, int width)
    {
        var (h, w) = (height, width);
        for (var s = 0; s < Vision.Stages; s++)
        {
            h = (h + 2 * Vision.PatchPadding[s] - Vision.PatchSize[s]) / Vision.PatchStride[s] + 1;
            w = (w + 2 * Vision.PatchPadding[s] - Vision.PatchSize[s]) / Vision.PatchStride[s] + 1;
        }
        return h * w + 1;
    }

    public static Florence2Params FromFile(string path) => FromJson(File.ReadAllText(path));

    public static Florence2Params FromJson(string json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        var v = root.GetProperty("vision_config");
        var t = root.GetProperty("text_config");

        int[] Ints(JsonElement e, params string[] names) => Find(e, names).EnumerateArray().Select(x => x.GetInt32()).ToArray();
        int Int(JsonElement e, int? fallback, params string[] names) =>
            TryFind(e, names) is { } x ? x.GetInt32() : fallback ?? throw Missing(names);
        double Double(JsonElement e, double fallback, string name) => e.TryGetProperty(name, out var x) ? x.GetDouble() : fallback;
        bool Bool(JsonElement e, bool fallback, string name) => e.TryGetProperty(name, out var x) && x.ValueKind is JsonValueKind.True or JsonValueKind.False ? x.GetBoolean() : fallback;

        var embed = Ints(v, "embed_dim", "dim_embed");
        var maxPos = TryFind(v, "max_position_embeddings") ?? TryFind(v, "max_pos_embeddings")
            ?? (v.TryGetProperty("image_pos_embed", out var ipe) ? TryFind(ipe, "max_pos_embeddings") : null);
        var maxTemporal = TryFind(v, "max_temporal_embeddings")
            ?? (v.TryGetProperty("visual_temporal_embedding", out var vte) ? TryFind(vte, "max_temporal_embeddings") : null);
        var projection = TryFind(v, "projection_dim") ?? TryFind(root, "projection_dim");
        var vision = new DaVitParams(
            Int(v, 3, "in_chans", "in_channels"), Ints(v, "depths"), Ints(v, "patch_size"), Ints(v, "patch_stride"),
            Ints(v, "patch_padding"), Find(v, "patch_prenorm").EnumerateArray().Select(x => x.GetBoolean()).ToArray(),
            embed, Ints(v, "num_heads"), Ints(v, "num_groups"), Int(v, null, "window_size"), Double(v, 4.0, "mlp_ratio"),
            Bool(v, true, "qkv_bias"), projection?.GetInt32() ?? throw Missing(["projection_dim"]),
            maxPos?.GetInt32() ?? throw Missing(["max_position_embeddings"]),
            maxTemporal?.GetInt32() ?? throw Missing(["max_temporal_embeddings"]));

        var text = new BartParams(
            Int(t, null, "vocab_size"), Int(t, null, "d_model"), Int(t, null, "encoder_layers"), Int(t, null, "decoder_layers"),
            Int(t, null, "encoder_attention_heads"), Int(t, null, "decoder_attention_heads"), Int(t, null, "encoder_ffn_dim"),
            Int(t, null, "decoder_ffn_dim"), Int(t, null, "max_position_embeddings"), Bool(t, false, "scale_embedding"),
            Int(t, 0, "bos_token_id"), Int(t, 1, "pad_token_id"), Int(t, 2, "eos_token_id"), Int(t, 2, "decoder_start_token_id"),
            t.TryGetProperty("activation_function", out var act) ? act.GetString()! : "gelu");
        if (text.Activation != "gelu") throw new InvalidDataException($"Florence-2 text activation '{text.Activation}' is not supported (gelu only).");
        if (v.TryGetProperty("activation_function", out var vact) && vact.GetString() != "gelu")
            throw new InvalidDataException($"Florence-2 vision activation '{vact.GetString()}' is not supported (gelu only).");

        int? imageToken = root.TryGetProperty("image_token_id", out var it) && it.ValueKind == JsonValueKind.Number ? it.GetInt32() : null;
        return new Florence2Params(vision, text, imageToken);
    }

    private static JsonElement Find(JsonElement e, params string[] names) => TryFind(e, names) ?? throw Missing(names);

    private static JsonElement? TryFind(JsonElement e, params string[] names)
    {
        foreach (var name in names)
            if (e.TryGetProperty(name, out var x) && x.ValueKind != JsonValueKind.Null) return x;
        return null;
    }

    private static InvalidDataException Missing(string[] names) => new($"Florence-2 config.json lacks '{names[0]}'.");
}
