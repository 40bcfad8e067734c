using System.IO.Compression;
using System.Text.Json;

namespace Likeness.Engine.Training;

public sealed record DatasetEntry(string Image, string Caption, int Width, int Height, byte[] Bytes);

/// <summary>Reads the dataset zip (the pipeline's contract): manifest.json with items, beside NNN.jpg + NNN.txt.</summary>
public static class DatasetReader
{
    public sealed record Manifest(string TriggerWord, string BaseModel, IReadOnlyList<DatasetEntry> Items);

    public static Manifest Read(string zipPath)
    {
        using var zip = ZipFile.OpenRead(zipPath);
        var manifestEntry = zip.GetEntry("manifest.json") ?? throw new InvalidDataException("The dataset has no manifest.json.");
        using var manifestStream = manifestEntry.Open();
        using var doc = JsonDocument.Parse(manifestStream);
        var root = doc.RootElement;
        var items = new List<DatasetEntry>();
        foreach (var item in root.GetProperty("items").EnumerateArray())
        {
            var name = item.GetProperty("image").GetString()!;
            var entry = zip.GetEntry(name) ?? throw new InvalidDataException($"The dataset lacks {name}.");
            using var s = entry.Open();
            using var buffer = new MemoryStream();
            s.CopyTo(buffer);
            items.Add(new DatasetEntry(name, item.GetProperty("caption").GetString() ?? "", item.GetProperty("width").GetInt32(),
                item.GetProperty("height").GetInt32(), buffer.ToArray()));
        }
        if (items.Count == 0) throw new InvalidDataException("The dataset has no images.");
        return new Manifest(root.TryGetProperty("triggerWord", out var t) ? t.GetString() ?? "" : "",
            root.TryGetProperty("baseModel", out var b) ? b.GetString() ?? "" : "", items);
    }

    /// <summary>
    /// The aspect-ratio bucket of an image: the candidate (sides multiples of 16, area ≈ base²) closest in log aspect.
    /// </summary>
    public static (int Width, int Height) Bucket(int width, int height, int baseResolution)
    {
        (int, int)[] ratios = [(1, 1), (4, 3), (3, 4), (3, 2), (2, 3), (16, 9), (9, 16)];
        var aspect = Math.Log((double)width / height);
        var (rw, rh) = ratios.MinBy(r => Math.Abs(Math.Log((double)r.Item1 / r.Item2) - aspect));
        var w = Math.Sqrt((double)baseResolution * baseResolution * rw / rh);
        var h = w * rh / rw;
        return (Math.Max(16, (int)Math.Round(w / 16) * 16), Math.Max(16, (int)Math.Round(h / 16) * 16));
    }
}
