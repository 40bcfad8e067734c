using System.Text.RegularExpressions;
using Likeness.Engine.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Captioning;

/// <summary>A set of named tensors on disk, read one at a time (safetensors files, or a torch <c>.bin</c>).</summary>
public interface ITensorSource : IDisposable
{
    IReadOnlyCollection<string> Keys { get; }
    long[] Shape(string key);
    Tensor Read(string key, ScalarType dtype);
}

/// <summary>One or more safetensors files (a folder's shards) as one source.</summary>
public sealed class SafeTensorsSource : ITensorSource
{
    private readonly List<SafeTensorsReader> _readers;
    private readonly Dictionary<string, SafeTensorsReader> _byKey = new(StringComparer.Ordinal);

    public SafeTensorsSource(IEnumerable<string> files)
    {
        _readers = files.Select(SafeTensorsFile.Open).ToList();
        foreach (var reader in _readers)
            foreach (var key in reader.Keys) _byKey[key] = reader;
    }

    public IReadOnlyCollection<string> Keys => _byKey.Keys;
    public long[] Shape(string key) => _byKey[key].Info(key).Shape;
    public Tensor Read(string key, ScalarType dtype) => _byKey[key].Read(key, dtype);
    public void Dispose() { foreach (var r in _readers) r.Dispose(); }
}

/// <summary>
/// Loads Florence-2 weights into <see cref="Florence2Model"/> by key, from either published layout: transformers'
/// native keys (<c>model.vision_tower.…</c>, <c>model.language_model.…</c>, <c>lm_head.weight</c>), which are the
/// module's own names, or Microsoft's original checkpoint (<c>vision_tower.convs.0.proj</c>,
/// <c>…spatial_block.window_attn.fn.qkv</c>, <c>image_projection</c>, <c>language_model.model.…</c>), renamed by the
/// explicit table in <see cref="NativeKey"/> (the one transformers' conversion script applies).
/// </summary>
public static class Florence2Checkpoint
{
    /// <summary>Tied copies of <c>shared.weight</c>: checked for shape and skipped, since the model holds one matrix.</summary>
    private static readonly string[] TiedCopies =
    [
        "model.language_model.encoder.embed_tokens.weight",
        "model.language_model.decoder.embed_tokens.weight",
        "lm_head.weight",
    ];

    /// <summary>What the model makes itself when a checkpoint lacks it.</summary>
    private const string TemporalTable = "model.multi_modal_projector.visual_temporal_embed.pos_idx_to_embed";

    private static readonly (Regex From, string To)[] OriginalRenames =
    [
        (new(@"^vision_tower\.convs\.(\d+)\.proj\.(weight|bias)$"), "model.vision_tower.convs.$1.conv.$2"),
        (new(@"^vision_tower\.convs\.(\d+)\.norm\.(weight|bias)$"), "model.vision_tower.convs.$1.norm.$2"),
        (new(@"^vision_tower\.blocks\.(\d+)\.(\d+)\.(spatial_block|channel_block)\.(conv1|conv2)\.fn\.dw\.(weight|bias)$"), "model.vision_tower.blocks.$1.$2.$3.$4.$5"),
        (new(@"^vision_tower\.blocks\.(\d+)\.(\d+)\.spatial_block\.window_attn\.norm\.(weight|bias)$"), "model.vision_tower.blocks.$1.$2.spatial_block.norm1.$3"),
        (new(@"^vision_tower\.blocks\.(\d+)\.(\d+)\.spatial_block\.window_attn\.fn\.(qkv|proj)\.(weight|bias)$"), "model.vision_tower.blocks.$1.$2.spatial_block.window_attn.$3.$4"),
        (new(@"^vision_tower\.blocks\.(\d+)\.(\d+)\.channel_block\.channel_attn\.norm\.(weight|bias)$"), "model.vision_tower.blocks.$1.$2.channel_block.norm1.$3"),
        (new(@"^vision_tower\.blocks\.(\d+)\.(\d+)\.channel_block\.channel_attn\.fn\.(qkv|proj)\.(weight|bias)$"), "model.vision_tower.blocks.$1.$2.channel_block.channel_attn.$3.$4"),
        (new(@"^vision_tower\.blocks\.(\d+)\.(\d+)\.(spatial_block|channel_block)\.ffn\.norm\.(weight|bias)$"), "model.vision_tower.blocks.$1.$2.$3.norm2.$4"),
        (new(@"^vision_tower\.blocks\.(\d+)\.(\d+)\.(spatial_block|channel_block)\.ffn\.fn\.net\.(fc1|fc2)\.(weight|bias)$"), "model.vision_tower.blocks.$1.$2.$3.ffn.$4.$5"),
        (new(@"^image_projection$"), "model.multi_modal_projector.image_projection.weight"),
        (new(@"^image_proj_norm\.(weight|bias)$"), "model.multi_modal_projector.image_proj_norm.$1"),
        (new(@"^image_pos_embed\.(row|column)_embeddings\.weight$"), "model.multi_modal_projector.image_position_embed.$1_embeddings.weight"),
        (new(@"^visual_temporal_embed\.pos_idx_to_embed$"), TemporalTable),
        (new(@"^language_model\.model\.(.+)$"), "model.language_model.$1"),
        (new(@"^language_model\.lm_head\.weight$"), "lm_head.weight"),
    ];

    /// <summary>
    /// Original keys with no counterpart in the captioning network: DaViT's classification norm and head, which
    /// Florence-2 never runs, and BART's <c>final_logits_bias</c>, a zero buffer (refused if not zero).
    /// </summary>
    private static readonly Regex OriginalUnused = new(@"^(vision_tower\.(norms|head)\.|language_model\.final_logits_bias$)");

    /// <summary>The native key for a key of Microsoft's layout; null for the unused ones.</summary>
    public static string? NativeKey(string originalKey)
    {
        foreach (var (from, to) in OriginalRenames)
            if (from.IsMatch(originalKey)) return from.Replace(originalKey, to);
        if (OriginalUnused.IsMatch(originalKey)) return null;
        throw new InvalidDataException($"Florence-2 checkpoint key '{originalKey}' is not part of the original layout this engine reads.");
    }

    /// <summary>True when the keys are Microsoft's original layout rather than transformers' native one.</summary>
    public static bool IsOriginalLayout(IEnumerable<string> keys) => keys.Any(k => k.StartsWith("language_model.model.", StringComparison.Ordinal));

    public static void Load(Florence2Model model, ITensorSource source, string name)
    {
        var own = model.state_dict();
        var missing = new HashSet<string>(own.Keys, StringComparer.Ordinal);
        var original = IsOriginalLayout(source.Keys);
        using var noGrad = no_grad();
        foreach (var key in source.Keys)
        {
            var target = original ? NativeKey(key) : key;
            if (target is null)
            {
                if (key.EndsWith("final_logits_bias", StringComparison.Ordinal))
                {
                    using var bias = source.Read(key, ScalarType.Float32);
                    if (bias.abs().max().item<float>() != 0) throw new InvalidDataException($"{name}: '{key}' is not zero; this engine has no logits bias.");
                }
                continue;
            }
            if (TiedCopies.Contains(target))
            {
                var shared = own["model.language_model.shared.weight"];
                if (!source.Shape(key).SequenceEqual(shared.shape))
                    throw new InvalidDataException($"{name}: '{key}' has shape [{string.Join(", ", source.Shape(key))}], the tied embedding [{string.Join(", ", shared.shape)}].");
                continue;
            }
            if (!own.TryGetValue(target, out var parameter))
                throw new InvalidDataException($"{name}: '{key}' is not part of this Florence-2 model.");
            using var value = source.Read(key, parameter.dtype);
            // The original keeps the projection as a matrix applied on the right (x·P); the native layout as a Linear (P·x).
            using var oriented = original && key == "image_projection" ? value.t() : value.alias();
            if (!oriented.shape.SequenceEqual(parameter.shape))
                throw new InvalidDataException($"{name}: '{key}' has shape [{string.Join(", ", oriented.shape)}], expected [{string.Join(", ", parameter.shape)}].");
            parameter.copy_(oriented);
            missing.Remove(target);
        }
        missing.Remove(TemporalTable);
        if (missing.Count > 0)
            throw new InvalidDataException($"{name} lacks: {string.Join(", ", missing.Order(StringComparer.Ordinal).Take(8))}{(missing.Count > 8 ? ", …" : "")}.");
    }
}
