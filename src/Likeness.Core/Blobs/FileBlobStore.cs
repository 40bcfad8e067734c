using Likeness.Core.Ports;

namespace Likeness.Core.Blobs;

/// <summary>Blobs as files under one root folder; writes go to a temporary file first so readers never see half a blob.</summary>
public sealed class FileBlobStore(string root) : IBlobStore
{
    private const string TempSuffix = ".tmp";

    public string Root { get; } = Path.GetFullPath(root);

    public async Task PutAsync(string key, Stream content, CancellationToken cancellationToken)
    {
        var path = PathFor(key);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var tmp = $"{path}.{Guid.NewGuid():N}{TempSuffix}";
        try
        {
            await using (var file = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 81920, useAsync: true))
            {
                await content.CopyToAsync(file, cancellationToken);
            }
            File.Move(tmp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    public Task<Stream?> OpenReadAsync(string key, CancellationToken cancellationToken)
    {
        var path = PathFor(key);
        Stream? stream = File.Exists(path)
            ? new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 81920, useAsync: true)
            : null;
        return Task.FromResult(stream);
    }

    public Task<bool> ExistsAsync(string key, CancellationToken cancellationToken) => Task.FromResult(File.Exists(PathFor(key)));

    public Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken cancellationToken)
    {
        var slash = prefix.LastIndexOf('/');
        var folder = slash < 0 ? Root : PathFor(prefix[..slash]);
        IReadOnlyList<string> keys = !Directory.Exists(folder) ? [] : Directory
            .EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(f => !f.EndsWith(TempSuffix, StringComparison.Ordinal))
            .Select(f => Path.GetRelativePath(Root, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Where(k => k.StartsWith(prefix, StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToList();
        return Task.FromResult(keys);
    }

    public async IAsyncEnumerable<StoredBlob> EnumerateAsync(string prefix,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        foreach (var key in await ListAsync(prefix, cancellationToken))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var info = new FileInfo(PathFor(key));
            if (info.Exists) yield return new StoredBlob(key, info.LastWriteTimeUtc);
        }
    }

    /// <summary>
    /// A write is a temporary file renamed into place: a process killed while writing leaves the temporary file (never
    /// listed). Those older than <paramref name="olderThan"/> go, and so do the folders they leave empty.
    /// </summary>
    public Task<int> RemoveInterruptedWritesAsync(DateTimeOffset olderThan, CancellationToken cancellationToken)
    {
        if (!Directory.Exists(Root)) return Task.FromResult(0);
        var removed = 0;
        foreach (var tmp in Directory.EnumerateFiles(Root, "*" + TempSuffix, SearchOption.AllDirectories))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (File.GetLastWriteTimeUtc(tmp) >= olderThan.UtcDateTime) continue;
            try
            {
                File.Delete(tmp);
                removed++;
            }
            catch (IOException) { } // gone already, or busy: the next sweep sees it again
        }
        RemoveEmptyFolders(Root, olderThan.UtcDateTime);
        return Task.FromResult(removed);
    }

    /// <summary>Empty folders untouched since <paramref name="olderThan"/>: a younger one may be a write's, made a moment ago.</summary>
    private static void RemoveEmptyFolders(string folder, DateTime olderThan)
    {
        foreach (var child in Directory.EnumerateDirectories(folder))
        {
            RemoveEmptyFolders(child, olderThan);
            try
            {
                if (Directory.GetLastWriteTimeUtc(child) < olderThan && !Directory.EnumerateFileSystemEntries(child).Any()) Directory.Delete(child);
            }
            catch (IOException) { } // a write began in it after all
        }
    }

    public Task DeletePrefixAsync(string prefix, CancellationToken cancellationToken)
    {
        var path = PathFor(prefix.TrimEnd('/'));
        if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
        else if (File.Exists(path)) File.Delete(path);
        return Task.CompletedTask;
    }

    private string PathFor(string key)
    {
        if (key.Length == 0 || key.Contains("..") || key.StartsWith('/') || key.Contains('\\'))
            throw new ArgumentException($"Invalid blob key '{key}'.", nameof(key));
        return Path.Combine(Root, key.Replace('/', Path.DirectorySeparatorChar));
    }
}
