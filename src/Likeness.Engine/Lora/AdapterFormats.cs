using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Likeness.Engine.Flux;
using Likeness.Engine.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Lora;

public enum AdapterFormat { Native, Peft, Kohya }

/// <summary>One adapted linear in the reference layout: A [r, in], B [out, r], scale α/r.</summary>
public sealed record AdapterLayer(Tensor A, Tensor B, float Scale);

/// <summary>
/// The FLUX LoRA layouts of the ecosystem, converted exactly to and from the engine's own (reference paths,
/// <c>lora_A</c>/<c>lora_B</c>):
/// <list type="bullet">
/// <item>PEFT/diffusers — <c>transformer.&lt;diffusers path&gt;.lora_A.weight</c> / <c>.lora_B.weight</c>, no alpha (scale 1; on
/// import a per-layer <c>.alpha</c> or diffusers' <c>lora_adapter_metadata</c> is honoured):
/// the fused qkv and single-block linear1 are split into to_q/to_k/to_v(/proj_mlp), each with the same A and its
/// rows of B; on import, split layers are fused back as a block-diagonal adapter of rank Σr, which is exact.</item>
/// <item>kohya — <c>lora_unet_&lt;reference path, '.'→'_'&gt;.lora_down.weight</c> / <c>.lora_up.weight</c> / <c>.alpha</c>.</item>
/// </list>
/// Any linear of the transformer may be adapted (embedders and final layer too, with <c>norm_out.linear</c>'s halves
/// swapped); text-encoder parts of a file are left out, as the engine adapts the transformer only.
/// </summary>
public static class AdapterFormats
{
    private const string PeftPrefix = "transformer.";
    private const string KohyaPrefix = "lora_unet_";

    public static AdapterFormat Detect(IEnumerable<string> keys)
    {
        var list = keys.ToList();
        if (list.Any(k => k.StartsWith(KohyaPrefix, StringComparison.Ordinal))) return AdapterFormat.Kohya;
        if (list.Any(k => k.StartsWith(PeftPrefix, StringComparison.Ordinal) || k.Contains("transformer_blocks.", StringComparison.Ordinal)))
            return AdapterFormat.Peft;
        if (list.Any(k => k.EndsWith(".lora_A.weight", StringComparison.Ordinal))) return AdapterFormat.Native;
        throw new InvalidDataException("The file holds no LoRA weights in a known layout (native, PEFT/diffusers or kohya).");
    }

    /// <summary>Reads any supported file into reference-path layers (F32 on the CPU).</summary>
    public static Dictionary<string, AdapterLayer> Read(string path, IReadOnlyCollection<string> referencePaths, FluxParams model)
    {
        using var reader = SafeTensorsFile.Open(path);
        var tensors = reader.Keys.ToDictionary(k => k, k => reader.Read(k, ScalarType.Float32), StringComparer.Ordinal);
        return Detect(tensors.Keys) switch
        {
            AdapterFormat.Kohya => FromKohya(tensors, referencePaths),
            AdapterFormat.Peft => FromPeft(tensors, reader.Metadata, model),
            _ => FromNative(tensors, reader.Metadata),
        };
    }

    public static void Write(string path, AdapterFormat format, IReadOnlyDictionary<string, AdapterLayer> layers, FluxParams model,
        IReadOnlyDictionary<string, string> metadata)
    {
        var tensors = format switch
        {
            AdapterFormat.Kohya => ToKohya(layers),
            AdapterFormat.Peft => ToPeft(layers, model),
            _ => ToNative(layers),
        };
        var meta = new Dictionary<string, string>(metadata) { ["format"] = format.ToString().ToLowerInvariant() };
        // Scales travel inside B (native, PEFT) or as per-layer .alpha tensors (kohya): no file-wide alpha survives.
        meta.Remove("alpha");
        if (format == AdapterFormat.Native && layers.Count > 0)
        {
            var rank = layers.Values.First().A.shape[0].ToString(CultureInfo.InvariantCulture);
            meta["rank"] = rank;
            meta["alpha"] = rank;
        }
        SafeTensorsFile.Save(path, tensors, meta);
    }

    /// <summary>Converts a native adapter file to another layout.</summary>
    public static void Convert(string nativePath, string outputPath, AdapterFormat format, FluxParams model)
    {
        using var reader = SafeTensorsFile.Open(nativePath);
        var tensors = reader.Keys.ToDictionary(k => k, k => reader.Read(k, ScalarType.Float32), StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(reader.Metadata);
        var layers = FromNative(tensors, reader.Metadata);
        Write(outputPath, format, layers, Fit(model, layers), metadata);
    }

    /// <summary>
    /// The widths and block counts the layers themselves show (an adapter trained on a model folder of other sizes
    /// than its preset's): the hidden width from a qkv's input, the MLP width from linear1's rows, the counts from the
    /// highest block index. These decide how fused layers split.
    /// </summary>
    private static FluxParams Fit(FluxParams model, IReadOnlyDictionary<string, AdapterLayer> layers)
    {
        int Highest(string blocks) => layers.Keys.Where(k => k.StartsWith(blocks, StringComparison.Ordinal))
            .Select(k => int.Parse(k[blocks.Length..].Split('.')[0], CultureInfo.InvariantCulture)).DefaultIfEmpty(-1).Max();
        var qkv = layers.FirstOrDefault(kv => kv.Key.EndsWith(".img_attn.qkv", StringComparison.Ordinal)).Value;
        var linear1 = layers.FirstOrDefault(kv => kv.Key.EndsWith(".linear1", StringComparison.Ordinal)).Value;
        var hidden = (int)(qkv?.A.shape[1] ?? linear1?.A.shape[1] ?? model.HiddenSize);
        var mlpRatio = linear1 is null ? model.MlpRatio : (double)(linear1.B.shape[0] - 3 * hidden) / hidden;
        return model with
        {
            HiddenSize = hidden, MlpRatio = mlpRatio,
            Depth = Math.Max(model.Depth, Highest("double_blocks.") + 1), DepthSingleBlocks = Math.Max(model.DepthSingleBlocks, Highest("single_blocks.") + 1),
        };
    }

    private static readonly string[] NativePrefixes = [FluxModel.CheckpointPrefix, "diffusion_model."];

    private static Dictionary<string, AdapterLayer> FromNative(Dictionary<string, Tensor> t, IReadOnlyDictionary<string, string> metadata)
    {
        var layers = new Dictionary<string, AdapterLayer>(StringComparer.Ordinal);
        foreach (var key in t.Keys.Where(k => k.EndsWith(".lora_A.weight", StringComparison.Ordinal)))
        {
            var stem = key[..^".lora_A.weight".Length];
            var a = t[key];
            var b = t.GetValueOrDefault(stem + ".lora_B.weight") ?? throw new InvalidDataException($"'{stem}.lora_B.weight' is missing.");
            // ComfyUI-style files put the reference path under the checkpoint's prefix.
            var path = NativePrefixes.FirstOrDefault(p => stem.StartsWith(p, StringComparison.Ordinal)) is { } prefix ? stem[prefix.Length..] : stem;
            var rank = a.shape[0];
            var alpha = metadata.TryGetValue("alpha", out var text) && float.TryParse(text, CultureInfo.InvariantCulture, out var parsed) ? parsed : rank;
            layers[path] = new AdapterLayer(a, b, alpha / rank);
        }
        return layers;
    }

    private static Dictionary<string, Tensor> ToNative(IReadOnlyDictionary<string, AdapterLayer> layers)
    {
        // The native file has one alpha for all layers: fold each layer's scale into B and write alpha = rank.
        var t = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (path, l) in layers)
        {
            using var scale = l.Scale.ToScalar();
            t[path + ".lora_A.weight"] = l.A;
            t[path + ".lora_B.weight"] = l.B.mul(scale);
        }
        return t;
    }

    private static Dictionary<string, Tensor> ToKohya(IReadOnlyDictionary<string, AdapterLayer> layers)
    {
        var t = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (path, l) in layers)
        {
            var name = KohyaPrefix + path.Replace('.', '_');
            t[name + ".lora_down.weight"] = l.A;
            t[name + ".lora_up.weight"] = l.B;
            t[name + ".alpha"] = tensor(l.Scale * l.A.shape[0]);
        }
        return t;
    }

    private static Dictionary<string, AdapterLayer> FromKohya(Dictionary<string, Tensor> t, IReadOnlyCollection<string> referencePaths)
    {
        // '_' is ambiguous once dots became underscores: match against the model's own paths.
        var byName = referencePaths.ToDictionary(p => KohyaPrefix + p.Replace('.', '_'), p => p, StringComparer.Ordinal);
        var layers = new Dictionary<string, AdapterLayer>(StringComparer.Ordinal);
        foreach (var key in t.Keys.Where(k => k.EndsWith(".lora_down.weight", StringComparison.Ordinal) && !IsTextEncoderKey(k)))
        {
            var name = key[..^".lora_down.weight".Length];
            if (!byName.TryGetValue(name, out var path)) throw new InvalidDataException($"'{name}' names no linear layer of this model.");
            var a = t[key];
            var b = t.GetValueOrDefault(name + ".lora_up.weight") ?? throw new InvalidDataException($"'{name}.lora_up.weight' is missing.");
            var rank = a.shape[0];
            var alpha = t.TryGetValue(name + ".alpha", out var alphaTensor) ? alphaTensor.item<float>() : rank;
            layers[path] = new AdapterLayer(a, b, alpha / rank);
        }
        return layers;
    }

    /// <summary>
    /// Each reference linear's diffusers parts (diffusers layer path and the row pieces it fills), read off the
    /// transformer's own diffusers table so that weights and adapters share one renaming — fused q/k/v(/mlp) and the
    /// final layer's swapped (scale, shift) halves included.
    /// </summary>
    private static Dictionary<string, List<(string Diffusers, DiffusersLayout.Piece Piece)>> LayerTable(FluxParams model)
    {
        var table = new Dictionary<string, List<(string, DiffusersLayout.Piece)>>(StringComparer.Ordinal);
        foreach (var (key, pieces) in DiffusersLayout.Map(model).OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (!key.EndsWith(".weight", StringComparison.Ordinal)) continue;
            // Norm scales map to ".scale" targets; every ".weight" target is a linear.
            foreach (var piece in pieces.Where(p => p.Target.EndsWith(".weight", StringComparison.Ordinal)))
            {
                var reference = piece.Target[..^".weight".Length];
                if (!table.TryGetValue(reference, out var parts)) table[reference] = parts = [];
                parts.Add((key[..^".weight".Length], piece));
            }
        }
        return table;
    }

    private static long RowsOf(DiffusersLayout.Piece piece, Tensor referenceB) => piece.Rows < 0 ? referenceB.shape[0] : piece.Rows;

    private static Dictionary<string, Tensor> ToPeft(IReadOnlyDictionary<string, AdapterLayer> layers, FluxParams model)
    {
        var table = LayerTable(model);
        var t = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (path, l) in layers)
        {
            if (!table.TryGetValue(path, out var parts)) throw new InvalidDataException($"'{path}' has no diffusers counterpart.");
            // PEFT files carry no alpha (scale 1): the scale goes into B; split layers share A and take their rows of B.
            using var scale = l.Scale.ToScalar();
            foreach (var group in parts.GroupBy(p => p.Diffusers))
            {
                var rows = group.Sum(p => RowsOf(p.Piece, l.B));
                var b = zeros(rows, l.B.shape[1]);
                foreach (var (_, piece) in group)
                    b.narrow(0, piece.SourceRow, RowsOf(piece, l.B)).copy_(l.B.narrow(0, piece.TargetRow, RowsOf(piece, l.B)).mul(scale));
                t[$"{PeftPrefix}{group.Key}.lora_A.weight"] = l.A;
                t[$"{PeftPrefix}{group.Key}.lora_B.weight"] = b;
            }
        }
        return t;
    }

    /// <summary>Prefixes PEFT files carry before the diffusers path: diffusers' own, and PEFT's when saved directly.</summary>
    private static readonly string[] PeftPrefixes = [PeftPrefix, "base_model.model."];

    /// <summary>Text-encoder parts of a LoRA: the engine adapts the transformer only, so they are left out.</summary>
    private static readonly string[] TextEncoderPrefixes = ["text_encoder.", "text_encoder_2.", "lora_te_", "lora_te1_", "lora_te2_"];

    private static bool IsTextEncoderKey(string key) => TextEncoderPrefixes.Any(p => key.StartsWith(p, StringComparison.Ordinal));

    private static Dictionary<string, AdapterLayer> FromPeft(Dictionary<string, Tensor> t, IReadOnlyDictionary<string, string> metadata, FluxParams model)
    {
        string Strip(string k) => PeftPrefixes.FirstOrDefault(p => k.StartsWith(p, StringComparison.Ordinal)) is { } prefix ? k[prefix.Length..] : k;
        var alphaOf = DiffusersMetadataAlpha(metadata);
        var pieces = new Dictionary<string, (Tensor A, Tensor B, float Scale)>(StringComparer.Ordinal);
        foreach (var key in t.Keys.Where(k => k.EndsWith(".lora_A.weight", StringComparison.Ordinal) && !IsTextEncoderKey(k)))
        {
            var stem = key[..^".lora_A.weight".Length];
            var a = t[key];
            var b = t.GetValueOrDefault(stem + ".lora_B.weight") ?? throw new InvalidDataException($"'{stem}.lora_B.weight' is missing.");
            // Alpha: a per-layer ".alpha" tensor (converted kohya files), else diffusers' adapter metadata, else the rank.
            var rank = a.shape[0];
            var path = Strip(stem);
            var alpha = t.TryGetValue(stem + ".alpha", out var alphaTensor) ? alphaTensor.item<float>() : alphaOf(path) ?? rank;
            pieces[path] = (a, b, alpha / rank);
        }
        var table = LayerTable(model);
        var known = table.Values.SelectMany(parts => parts.Select(p => p.Diffusers)).ToHashSet(StringComparer.Ordinal);
        if (pieces.Keys.FirstOrDefault(k => !known.Contains(k)) is { } unknown)
            throw new InvalidDataException($"'{unknown}' is not a linear layer of this transformer.");

        var layers = new Dictionary<string, AdapterLayer>(StringComparer.Ordinal);
        foreach (var (path, parts) in table)
        {
            var present = parts.Where(p => pieces.ContainsKey(p.Diffusers)).ToList();
            if (present.Count == 0) continue;
            // Fused back exactly as a block-diagonal adapter: A = [A_q; A_k; A_v], B = diag(B_q, B_k, B_v), each
            // part's scale folded into its block; a missing part contributes nothing.
            var names = present.Select(p => p.Diffusers).Distinct().ToList();
            var a = cat(names.Select(n => pieces[n].A).ToList(), 0);
            var outFeatures = parts.Sum(p => p.Piece.Rows >= 0 ? p.Piece.Rows : pieces[p.Diffusers].B.shape[0]);
            var b = zeros(outFeatures, a.shape[0]);
            long column = 0;
            foreach (var name in names)
            {
                var (pa, pb, scale) = pieces[name];
                using var scaleScalar = scale.ToScalar();
                foreach (var (_, piece) in present.Where(p => p.Diffusers == name))
                {
                    var rows = RowsOf(piece, pb);
                    b.narrow(0, piece.TargetRow, rows).narrow(1, column, pa.shape[0]).copy_(pb.narrow(0, piece.SourceRow, rows).mul(scaleScalar));
                }
                column += pa.shape[0];
            }
            layers[path] = new AdapterLayer(a, b, 1f);
        }
        return layers;
    }

    /// <summary>
    /// diffusers (≥ 0.34) writes the PEFT adapter config into the file's metadata as JSON under
    /// <c>lora_adapter_metadata</c>: <c>transformer.lora_alpha</c> for every layer, and <c>transformer.alpha_pattern</c>
    /// mapping module names (matched at a dot boundary at the end of the path, as PEFT does) to their own alpha. Older
    /// files have none, meaning alpha = rank. Returns the alpha for a diffusers layer path, or null.
    /// </summary>
    private static Func<string, float?> DiffusersMetadataAlpha(IReadOnlyDictionary<string, string> metadata)
    {
        if (!metadata.TryGetValue("lora_adapter_metadata", out var json)) return _ => null;
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        float? global = null;
        foreach (var name in new[] { "transformer.lora_alpha", "lora_alpha" })
            if (root.TryGetProperty(name, out var alpha) && alpha.TryGetDouble(out var value)) { global = (float)value; break; }
        var patterns = new List<(Regex Pattern, float Alpha)>();
        foreach (var name in new[] { "transformer.alpha_pattern", "alpha_pattern" })
        {
            if (!root.TryGetProperty(name, out var table) || table.ValueKind != JsonValueKind.Object) continue;
            foreach (var entry in table.EnumerateObject())
                patterns.Add((new Regex($@"^(.*\.)?({entry.Name})$"), (float)entry.Value.GetDouble()));
            break;
        }
        return path => patterns.FirstOrDefault(p => p.Pattern.IsMatch(path)) is { Pattern: not null } hit ? hit.Alpha : global;
    }
}
