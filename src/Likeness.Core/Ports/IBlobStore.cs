namespace Likeness.Core.Ports;

/// <summary>Where photos, datasets, adapters and generated images live. Keys are relative paths with '/'.</summary>
public interface IBlobStore
{
    Task PutAsync(string key, Stream content, CancellationToken cancellationToken);
    /// <summary>Opens a blob for reading, or null when it does not exist.</summary>
    Task<Stream?> OpenReadAsync(string key, CancellationToken cancellationToken);
    Task<bool> ExistsAsync(string key, CancellationToken cancellationToken);
    /// <summary>Keys of every blob whose key starts with <paramref name="prefix"/>, in ordinal order.</summary>
    Task<IReadOnlyList<string>> ListAsync(string prefix, CancellationToken cancellationToken);
    /// <summary>Deletes every blob whose key starts with <paramref name="prefix"/>.</summary>
    Task DeletePrefixAsync(string prefix, CancellationToken cancellationToken);
    /// <summary>
    /// Every blob under <paramref name="prefix"/> with the time it was last written, in ordinal order of key, streamed
    /// page by page (the orphan sweeper walks the whole store with it).
    /// </summary>
    IAsyncEnumerable<StoredBlob> EnumerateAsync(string prefix, CancellationToken cancellationToken);
    /// <summary>
    /// Removes what writes cut short before <paramref name="olderThan"/> left behind (a killed process's temporary
    /// files); returns how many. Where a write is atomic and leaves nothing when interrupted, there is nothing to do.
    /// </summary>
    Task<int> RemoveInterruptedWritesAsync(DateTimeOffset olderThan, CancellationToken cancellationToken);
}

/// <summary>One stored blob as listed: its key and when it was last written.</summary>
public sealed record StoredBlob(string Key, DateTimeOffset LastModified);
