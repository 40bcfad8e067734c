using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.SafeTensors;

/// <summary>
/// Hugging Face style weights — one safetensors file, or a folder of shards with a <c>*.safetensors.index.json</c> —
/// loaded into a module by key, shard by shard, tensor by tensor. Keys the module does not have are refused unless
/// listed as known extras (tied copies, position-id buffers); keys it has but the files lack are refused.
/// </summary>
public static class CheckpointFolder
{
    /// <summary>Extras Hugging Face checkpoints carry that have no parameter here.</summary>
    public static readonly string[] KnownExtras = ["encoder.embed_tokens.weight", "text_model.embeddings.position_ids"];

    /// <summary>
    /// The files of a checkpoint and the keys each holds: a safetensors file, a <c>*.safetensors.index.json</c>, or a
    /// folder (its index if it has one, else every safetensors file in it).
    /// </summary>
    public static Dictionary<string, List<string>> Files(string path)
    {
        var files = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        if (File.Exists(path) && path.EndsWith(".index.json", StringComparison.Ordinal)) return FromIndex(path);
        if (File.Exists(path))
        {
            using var reader = SafeTensorsFile.Open(path);
            files[path] = reader.Keys.ToList();
            return files;
        }
        var index = Directory.EnumerateFiles(path, "*.safetensors.index.json").FirstOrDefault();
        if (index is null)
        {
            foreach (var file in Directory.EnumerateFiles(path, "*.safetensors").Order(StringComparer.Ordinal))
            {
                using var reader = SafeTensorsFile.Open(file);
                files[file] = reader.Keys.ToList();
            }
            if (files.Count == 0) throw new InvalidDataException($"{path} has no safetensors files.");
            return files;
        }
        return FromIndex(index);
    }

    private static Dictionary<string, List<string>> FromIndex(string index)
    {
        var files = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var folder = Path.GetDirectoryName(Path.GetFullPath(index))!;
        using var json = JsonDocument.Parse(File.ReadAllText(index));
        foreach (var entry in json.RootElement.GetProperty("weight_map").EnumerateObject())
        {
            var file = Path.Combine(folder, entry.Value.GetString()!);
            if (!files.TryGetValue(file, out var keys)) files[file] = keys = [];
            keys.Add(entry.Name);
        }
        return files;
    }

    public static void Load(nn.Module module, string path)
    {
        var own = module.state_dict();
        var missing = new HashSet<string>(own.Keys, StringComparer.Ordinal);
        using var noGrad = no_grad();
        foreach (var (file, keys) in Files(path))
        {
            using var reader = SafeTensorsFile.Open(file);
            foreach (var key in keys)
            {
                if (!own.TryGetValue(key, out var target))
                {
                    if (KnownExtras.Contains(key)) continue;
                    throw new InvalidDataException($"{file}: '{key}' is not part of this model.");
                }
                if (!reader.Info(key).Shape.SequenceEqual(target.shape))
                    throw new InvalidDataException($"{file}: '{key}' has shape [{string.Join(", ", reader.Info(key).Shape)}], expected [{string.Join(", ", target.shape)}].");
                using var value = reader.Read(key, target.dtype);
                target.copy_(value);
                missing.Remove(key);
            }
        }
        if (missing.Count > 0) throw new InvalidDataException($"{path} lacks: {string.Join(", ", missing.Order(StringComparer.Ordinal).Take(10))}{(missing.Count > 10 ? ", …" : "")}.");
    }
}
