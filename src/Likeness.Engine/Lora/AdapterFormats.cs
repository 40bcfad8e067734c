using System.Globalization;
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
    public static Dictionary<string, AdapterLayer> Read(string path, IReadOnlyCollection<string> referencePaths, int hiddenSize)
    {
        using var reader = SafeTensorsFile.Open(path);
        var tensors = reader.Keys.ToDictionary(k => k, k => reader.Read(k, ScalarType.Float32), StringComparer.Ordinal);
        return Detect(tensors.Keys) switch
        {
            AdapterFormat.Kohya => FromKohya(tensors, referencePaths),
            AdapterFormat.Peft => FromPeft(tensors, hiddenSize),
            _ => FromNative(tensors, reader.Metadata),
        };
    }

    public static void Write(string path, AdapterFormat format, IReadOnlyDictionary<string, AdapterLayer> layers, int hiddenSize,
        IReadOnlyDictionary<string, string> metadata)
    {
        var tensors = format switch
        {
            AdapterFormat.Kohya => ToKohya(layers),
            AdapterFormat.Peft => ToPeft(layers, hiddenSize),
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
    public static void Convert(string nativePath, string outputPath, AdapterFormat format, int hiddenSize)
    {
        using var reader = SafeTensorsFile.Open(nativePath);
        var tensors = reader.Keys.ToDictionary(k => k, k => reader.Read(k, ScalarType.Float32), StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(reader.Metadata);
        Write(outputPath, format, FromNative(tensors, reader.Metadata), hiddenSize, metadata);
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

    /// <summary>Reference path → diffusers paths with the row ranges of the fused output they take.</summary>
    private static IEnumerable<(string Diffusers, long Start, long Length)> Split(string path, long outFeatures, int hidden)
    {
        var parts = path.Split('.');
        var block = parts[1];
        if (parts[0] == "double_blocks")
        {
            var rest = string.Join('.', parts[2..]);
            var d = $"transformer_blocks.{block}";
            switch (rest)
            {
                case "img_attn.qkv":
                    yield return ($"{d}.attn.to_q", 0, hidden); yield return ($"{d}.attn.to_k", hidden, hidden); yield return ($"{d}.attn.to_v", 2 * hidden, hidden);
                    yield break;
                case "txt_attn.qkv":
                    yield return ($"{d}.attn.add_q_proj", 0, hidden); yield return ($"{d}.attn.add_k_proj", hidden, hidden); yield return ($"{d}.attn.add_v_proj", 2 * hidden, hidden);
                    yield break;
                case "img_attn.proj": yield return ($"{d}.attn.to_out.0", 0, outFeatures); yield break;
                case "txt_attn.proj": yield return ($"{d}.attn.to_add_out", 0, outFeatures); yield break;
                case "img_mlp.0": yield return ($"{d}.ff.net.0.proj", 0, outFeatures); yield break;
                case "img_mlp.2": yield return ($"{d}.ff.net.2", 0, outFeatures); yield break;
                case "txt_mlp.0": yield return ($"{d}.ff_context.net.0.proj", 0, outFeatures); yield break;
                case "txt_mlp.2": yield return ($"{d}.ff_context.net.2", 0, outFeatures); yield break;
                case "img_mod.lin": yield return ($"{d}.norm1.linear", 0, outFeatures); yield break;
                case "txt_mod.lin": yield return ($"{d}.norm1_context.linear", 0, outFeatures); yield break;
            }
        }
        else if (parts[0] == "single_blocks")
        {
            var rest = string.Join('.', parts[2..]);
            var s = $"single_transformer_blocks.{block}";
            switch (rest)
            {
                case "linear1":
                    yield return ($"{s}.attn.to_q", 0, hidden); yield return ($"{s}.attn.to_k", hidden, hidden); yield return ($"{s}.attn.to_v", 2 * hidden, hidden);
                    yield return ($"{s}.proj_mlp", 3 * hidden, outFeatures - 3 * hidden);
                    yield break;
                case "linear2": yield return ($"{s}.proj_out", 0, outFeatures); yield break;
                case "modulation.lin": yield return ($"{s}.norm.linear", 0, outFeatures); yield break;
            }
        }
        throw new InvalidDataException($"'{path}' has no diffusers counterpart.");
    }

    private static Dictionary<string, Tensor> ToPeft(IReadOnlyDictionary<string, AdapterLayer> layers, int hidden)
    {
        var t = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (path, l) in layers)
        {
            // PEFT files carry no alpha (scale 1): the scale goes into B.
            foreach (var (diffusers, start, length) in Split(path, l.B.shape[0], hidden))
            {
                t[$"{PeftPrefix}{diffusers}.lora_A.weight"] = l.A;
                t[$"{PeftPrefix}{diffusers}.lora_B.weight"] = (l.B.narrow(0, start, length) * l.Scale).contiguous();
            }
        }
        return t;
    }

    private static Dictionary<string, AdapterLayer> FromPeft(Dictionary<string, Tensor> t, int hidden)
    {
        string Strip(string k) => k.StartsWith(PeftPrefix, StringComparison.Ordinal) ? k[PeftPrefix.Length..] : k;
        var pieces = t.Keys.Where(k => k.EndsWith(".lora_A.weight", StringComparison.Ordinal))
            .ToDictionary(k => Strip(k)[..^".lora_A.weight".Length], k => (A: t[k], B: t[k[..^".lora_A.weight".Length] + ".lora_B.weight"]), StringComparer.Ordinal);
        var layers = new Dictionary<string, AdapterLayer>(StringComparer.Ordinal);
        foreach (var path in ReferenceTargets(pieces.Keys))
        {
            var splits = Split(path, OutFeatures(path, pieces, hidden), hidden).ToList();
            var present = splits.Where(s => pieces.ContainsKey(s.Diffusers)).ToList();
            if (present.Count == 0) continue;
            var outFeatures = splits.Sum(s => s.Length);
            // Fused back exactly as a block-diagonal adapter: A = [A_q; A_k; A_v], B = diag(B_q, B_k, B_v); a
            // missing part contributes nothing.
            var a = cat(present.Select(s => pieces[s.Diffusers].A).ToList(), 0);
            var b = zeros(outFeatures, a.shape[0]);
            long column = 0;
            foreach (var s in present)
            {
                var (pa, pb) = pieces[s.Diffusers];
                b.narrow(0, s.Start, s.Length).narrow(1, column, pa.shape[0]).copy_(pb);
                column += pa.shape[0];
            }
            layers[path] = new AdapterLayer(a, b, 1f);
        }
        return layers;
    }

    /// <summary>The fused layer's output width: 3·hidden for qkv, 3·hidden + the MLP width for linear1, else B's rows.</summary>
    private static long OutFeatures(string path, Dictionary<string, (Tensor A, Tensor B)> pieces, int hidden)
    {
        if (path.EndsWith(".qkv", StringComparison.Ordinal)) return 3L * hidden;
        if (path.EndsWith(".linear1", StringComparison.Ordinal))
        {
            var block = path.Split('.')[1];
            return pieces.TryGetValue($"single_transformer_blocks.{block}.proj_mlp", out var mlp) ? 3L * hidden + mlp.B.shape[0] : 7L * hidden;
        }
        // One diffusers layer stands for it: its B has the rows.
        var (diffusers, _, _) = Split(path, 0, hidden).Single();
        return pieces[diffusers].B.shape[0];
    }

    /// <summary>The reference paths that a set of diffusers paths touches.</summary>
    private static IEnumerable<string> ReferenceTargets(IEnumerable<string> diffusersPaths)
    {
        var result = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var p in diffusersPaths)
        {
            var parts = p.Split('.');
            var block = parts[1];
            var rest = string.Join('.', parts[2..]);
            if (parts[0] == "transformer_blocks")
            {
                result.Add(rest switch
                {
                    "attn.to_q" or "attn.to_k" or "attn.to_v" => $"double_blocks.{block}.img_attn.qkv",
                    "attn.add_q_proj" or "attn.add_k_proj" or "attn.add_v_proj" => $"double_blocks.{block}.txt_attn.qkv",
                    "attn.to_out.0" => $"double_blocks.{block}.img_attn.proj",
                    "attn.to_add_out" => $"double_blocks.{block}.txt_attn.proj",
                    "ff.net.0.proj" => $"double_blocks.{block}.img_mlp.0",
                    "ff.net.2" => $"double_blocks.{block}.img_mlp.2",
                    "ff_context.net.0.proj" => $"double_blocks.{block}.txt_mlp.0",
                    "ff_context.net.2" => $"double_blocks.{block}.txt_mlp.2",
                    "norm1.linear" => $"double_blocks.{block}.img_mod.lin",
                    "norm1_context.linear" => $"double_blocks.{block}.txt_mod.lin",
                    _ => throw new InvalidDataException($"'{p}' is not a FLUX transformer-block linear."),
                });
            }
            else if (parts[0] == "single_transformer_blocks")
            {
                result.Add(rest switch
                {
                    "attn.to_q" or "attn.to_k" or "attn.to_v" or "proj_mlp" => $"single_blocks.{block}.linear1",
                    "proj_out" => $"single_blocks.{block}.linear2",
                    "norm.linear" => $"single_blocks.{block}.modulation.lin",
                    _ => throw new InvalidDataException($"'{p}' is not a FLUX single-block linear."),
                });
            }
            else throw new InvalidDataException($"'{p}' is outside the FLUX transformer blocks.");
        }
        return result;
    }
}
