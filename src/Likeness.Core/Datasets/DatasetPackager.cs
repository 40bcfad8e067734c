using System.IO.Compression;
using System.Text;
using System.Text.Json;
using Likeness.Core.Ports;

namespace Likeness.Core.Datasets;

/// <summary>Writes and reads the dataset zip: <c>001.jpg</c> + <c>001.txt</c> … and <c>manifest.json</c>, in a fixed order.</summary>
public static class DatasetPackager
{
    public const string ManifestName = "manifest.json";

    public static DatasetManifest Write(string path, string triggerWord, SubjectDescription subject, string baseModel, IReadOnlyList<DatasetItem> items)
    {
        var manifestItems = new List<DatasetManifestItem>();
        var tmp = path + ".part";
        using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write))
        using (var zip = new ZipArchive(file, ZipArchiveMode.Create))
        {
            for (var i = 0; i < items.Count; i++)
            {
                var stem = (i + 1).ToString("000");
                // JPEG is already compressed: store it; captions compress.
                var image = zip.CreateEntry(stem + ".jpg", CompressionLevel.NoCompression);
                using (var s = image.Open()) s.Write(items[i].Jpeg);
                var caption = zip.CreateEntry(stem + ".txt", CompressionLevel.Optimal);
                using (var s = caption.Open()) s.Write(Encoding.UTF8.GetBytes(items[i].Caption));
                manifestItems.Add(new DatasetManifestItem(stem + ".jpg", items[i].Caption, items[i].Width, items[i].Height, items[i].Source));
            }
            var manifest = new DatasetManifest(triggerWord,
                new DatasetSubject(subject.Kind, subject.Gender, subject.Ethnicity, subject.Age), baseModel, manifestItems);
            var entry = zip.CreateEntry(ManifestName, CompressionLevel.Optimal);
            using (var s = entry.Open()) JsonSerializer.Serialize(s, manifest, DatasetManifest.Json);
        }
        File.Move(tmp, path, overwrite: true);
        return ReadManifest(path);
    }

    public static DatasetManifest ReadManifest(string path)
    {
        using var zip = ZipFile.OpenRead(path);
        return ReadManifest(zip);
    }

    /// <summary>The manifest of a dataset zip given as a seekable stream, with each image's size in bytes.</summary>
    public static (DatasetManifest Manifest, IReadOnlyDictionary<string, long> ImageBytes) ReadListing(Stream zipStream)
    {
        using var zip = new ZipArchive(zipStream, ZipArchiveMode.Read, leaveOpen: true);
        var bytes = zip.Entries.Where(e => e.FullName.EndsWith(".jpg", StringComparison.Ordinal)).ToDictionary(e => e.FullName, e => e.Length);
        return (ReadManifest(zip), bytes);
    }

    private static DatasetManifest ReadManifest(ZipArchive zip)
    {
        var entry = zip.GetEntry(ManifestName) ?? throw new InvalidDataException("The dataset has no manifest.json.");
        using var s = entry.Open();
        return JsonSerializer.Deserialize<DatasetManifest>(s, DatasetManifest.Json)
               ?? throw new InvalidDataException("The dataset's manifest.json is empty.");
    }
}
