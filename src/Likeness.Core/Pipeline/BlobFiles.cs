using Likeness.Core.Ports;

namespace Likeness.Core.Pipeline;

internal static class BlobFiles
{
    /// <summary>Copies a blob to a local file unless it is already there (atomically, so a crash leaves no half file).</summary>
    public static async Task<string> DownloadAsync(IBlobStore blobs, string key, string path, CancellationToken ct)
    {
        if (File.Exists(path)) return path;
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await using var source = await blobs.OpenReadAsync(key, ct) ?? throw new FileNotFoundException($"Blob '{key}' is missing.");
        var tmp = path + ".part";
        await using (var target = File.Create(tmp)) await source.CopyToAsync(target, ct);
        File.Move(tmp, path, overwrite: true);
        return path;
    }

    public static async Task UploadAsync(IBlobStore blobs, string key, string path, CancellationToken ct)
    {
        await using var file = File.OpenRead(path);
        await blobs.PutAsync(key, file, ct);
    }
}
