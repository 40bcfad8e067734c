using System.Globalization;
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
/// <item>PEFT/diffusers — <c>transformer.&lt;diffusers path&gt;.lora_A.weight</c> / <c>.lora_B.weight</c>, no alpha (scale 1):
/// the fused qkv and single-block linear1 are split into to_q/to_k/to_v(/proj_mlp), each with the same A and its
/// rows of B; on import, split layers are fused back as a block-diagonal adapter of rank Σr, which is exact.</item>
/// <item>kohya — <c>lora_unet_&lt;reference path, '.'→'_'&gt;.lora_down.weight</c> / <c>.lora_up.weight</c> / <c>.alpha</c>.</item>
/// </list>
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
            AdapterFormat.Peft => FromPeft(tensors, model),
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
        Write(outputPath, format, FromNative(tensors, reader.Metadata), model, metadata);
    }

    private static Dictionary<string, AdapterLayer> FromNative(Dictionary<string, Tensor> t, IReadOnlyDictionary<string, string> metadata)
    {
        var layers = new Dictionary<string, AdapterLayer>(StringComparer.Ordinal);
        foreach (var key in t.Keys.Where(k => k.EndsWith(".lora_A.weight", StringComparison.Ordinal)))
        {
            var path = key[..^".lora_A.weight".Length];
            var a = t[key];
            var b = t.GetValueOrDefault(path + ".lora_B.weight") ?? throw new InvalidDataException($"'{path}.lora_B.weight' is missing.");
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
            t[path + ".lora_A.weight"] = l.A;
            t[path + ".lora_B.weight"] = l.B * l.Scale;
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
        foreach (var key in t.Keys.Where(k => k.EndsWith(".lora_down.weight", StringComparison.Ordinal)))
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
    /// Each adapted reference layer's diffusers parts (layer path, first row of the fused output, rows; −1 = all),
    /// read off the transformer's own diffusers table so that weights and adapters share one renaming.
    /// </summary>
    private static Dictionary<string, List<(string Diffusers, long Row, long Rows)>> LayerTable(FluxParams model)
    {
        var table = new Dictionary<string, List<(string, long, long)>>(StringComparer.Ordinal);
        foreach (var (key, pieces) in DiffusersLayout.Map(model).OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (!key.EndsWith(".weight", StringComparison.Ordinal)) continue;
            foreach (var piece in pieces.Where(p => p.Target.EndsWith(".weight", StringComparison.Ordinal)))
            {
                var reference = piece.Target[..^".weight".Length];
                if (!LoraAdapter.IsTarget(reference)) continue;
                if (!table.TryGetValue(reference, out var parts)) table[reference] = parts = [];
                parts.Add((key[..^".weight".Length], piece.TargetRow, piece.Rows));
            }
        }
        foreach (var parts in table.Values) parts.Sort((a, b) => a.Item2.CompareTo(b.Item2));
        return table;
    }

    private static Dictionary<string, Tensor> ToPeft(IReadOnlyDictionary<string, AdapterLayer> layers, FluxParams model)
    {
        var table = LayerTable(model);
        var t = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (path, l) in layers)
        {
            if (!table.TryGetValue(path, out var parts)) throw new InvalidDataException($"'{path}' has no diffusers counterpart.");
            // PEFT files carry no alpha (scale 1): the scale goes into B; split layers share A and take their rows of B.
            foreach (var (diffusers, row, rows) in parts)
            {
                t[$"{PeftPrefix}{diffusers}.lora_A.weight"] = l.A;
                t[$"{PeftPrefix}{diffusers}.lora_B.weight"] = (l.B.narrow(0, row, rows < 0 ? l.B.shape[0] : rows) * l.Scale).contiguous();
            }
        }
        return t;
    }

    private static Dictionary<string, AdapterLayer> FromPeft(Dictionary<string, Tensor> t, FluxParams model)
    {
        string Strip(string k) => k.StartsWith(PeftPrefix, StringComparison.Ordinal) ? k[PeftPrefix.Length..] : k;
        var pieces = t.Keys.Where(k => k.EndsWith(".lora_A.weight", StringComparison.Ordinal))
            .ToDictionary(k => Strip(k)[..^".lora_A.weight".Length], k => (A: t[k], B: t[k[..^".lora_A.weight".Length] + ".lora_B.weight"]), StringComparer.Ordinal);
        var table = LayerTable(model);
        var known = table.Values.SelectMany(parts => parts.Select(p => p.Diffusers)).ToHashSet(StringComparer.Ordinal);
        if (pieces.Keys.FirstOrDefault(k => !known.Contains(k)) is { } unknown)
            throw new InvalidDataException($"'{unknown}' is not a linear of this transformer's blocks.");

        var layers = new Dictionary<string, AdapterLayer>(StringComparer.Ordinal);
        foreach (var (path, parts) in table)
        {
            var present = parts.Where(p => pieces.ContainsKey(p.Diffusers)).ToList();
            if (present.Count == 0) continue;
            var outFeatures = parts.Sum(p => p.Rows >= 0 ? p.Rows : pieces[p.Diffusers].B.shape[0]);
            // Fused back exactly as a block-diagonal adapter: A = [A_q; A_k; A_v], B = diag(B_q, B_k, B_v); a
            // missing part contributes nothing.
            var a = cat(present.Select(p => pieces[p.Diffusers].A).ToList(), 0);
            var b = zeros(outFeatures, a.shape[0]);
            long column = 0;
            foreach (var (diffusers, row, _) in present)
            {
                var (pa, pb) = pieces[diffusers];
                b.narrow(0, row, pb.shape[0]).narrow(1, column, pa.shape[0]).copy_(pb);
                column += pa.shape[0];
            }
            layers[path] = new AdapterLayer(a, b, 1f);
        }
        return layers;
    }
}
