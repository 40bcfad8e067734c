using System.Collections.Concurrent;
using System.Diagnostics.CodeAnalysis;
using Likeness.Core.Data;

namespace Likeness.Core.Teams;

/// <summary>
/// Active API keys by their hash, each kept for <see cref="Lifetime"/> after it was read from the database, so that
/// an authenticated request is not first of all a database read (issue #11's profile: the key lookup was half of the
/// work of <c>GET /v2/loras/{id}</c>). A key revoked through <see cref="TeamAdmin.RevokeKeyAsync"/> in this process
/// leaves every cache of the process at once; one revoked by another process (the CLI, another node) is still accepted
/// here until its entry expires — at most <see cref="Lifetime"/> after this process last read it. Unknown keys are
/// never cached: a new key works at its first request on every node.
/// </summary>
public sealed class ApiKeyCache : IDisposable
{
    public static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(5);
    /// <summary>More keys than this in use within one lifetime and the expired ones are swept out, or all of them.</summary>
    private const int MaxEntries = 10_000;

    /// <summary>Every live cache of the process listens: revocation may run on any context of any host.</summary>
    private static event Action<string, byte[]>? Revoked;

    private readonly ConcurrentDictionary<byte[], Entry> _entries = new(HashComparer.Instance);
    private readonly TimeProvider _clock;
    private readonly long _lifetimeTicks;
    private long _evictions;

    public ApiKeyCache(TimeProvider clock)
    {
        _clock = clock;
        _lifetimeTicks = (long)(Lifetime.TotalSeconds * clock.TimestampFrequency);
        Revoked += Evict;
    }

    /// <summary>Taken before a database read whose result goes to <see cref="Add"/>: an eviction since then wins.</summary>
    public long Version => Interlocked.Read(ref _evictions);

    public bool TryGet(byte[] hash, [NotNullWhen(true)] out ActiveKey? key)
    {
        if (_entries.TryGetValue(hash, out var entry) && _clock.GetTimestamp() < entry.Expires)
        {
            key = entry.Key;
            return true;
        }
        key = null;
        return false;
    }

    /// <summary>
    /// Keeps a key read from the database when <paramref name="versionBefore"/> was taken, unless a key was revoked
    /// in this process since: that revocation may be the very key, read just before its row changed.
    /// </summary>
    public void Add(ActiveKey key, long versionBefore)
    {
        var now = _clock.GetTimestamp();
        if (_entries.Count >= MaxEntries)
        {
            foreach (var (hash, entry) in _entries)
                if (entry.Expires <= now) _entries.TryRemove(hash, out _);
            if (_entries.Count >= MaxEntries) _entries.Clear();
        }
        _entries[key.KeyHash] = new Entry(key, now + _lifetimeTicks);
        if (Version != versionBefore) _entries.TryRemove(key.KeyHash, out _);
    }

    /// <summary>Called by <see cref="TeamAdmin.RevokeKeyAsync"/>: the key (or the key with this id) leaves every cache.</summary>
    internal static void EvictEverywhere(string keyId, byte[] keyHash) => Revoked?.Invoke(keyId, keyHash);

    private void Evict(string keyId, byte[] keyHash)
    {
        Interlocked.Increment(ref _evictions);
        _entries.TryRemove(keyHash, out _);
        foreach (var (hash, entry) in _entries)
            if (entry.Key.Id == keyId) _entries.TryRemove(hash, out _);
    }

    public void Dispose() => Revoked -= Evict;

    private readonly record struct Entry(ActiveKey Key, long Expires);

    /// <summary>SHA-256 output is uniform: its first bytes are as good a hash code as any.</summary>
    private sealed class HashComparer : IEqualityComparer<byte[]>
    {
        public static readonly HashComparer Instance = new();
        public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);
        public int GetHashCode(byte[] obj) => obj.Length >= 4 ? BitConverter.ToInt32(obj, 0) : obj.Length;
    }
}
