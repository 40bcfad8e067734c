using Likeness.Core.Blobs;
using Likeness.Core.Common;
using Likeness.Core.Data;
using Likeness.Core.Pipeline;
using Likeness.Core.Ports;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Likeness.Core.Storage;

/// <summary>What one sweep removed.</summary>
public sealed record SweepReport(int StagingFolders, int Blobs, int WorkFolders, int InterruptedWrites)
{
    public int Total => StagingFolders + Blobs + WorkFolders + InterruptedWrites;
}

/// <summary>
/// Removes what no row references, so that nothing a request or job stores outlives it: abandoned staging folders
/// (and the photos an interrupted request had begun to copy, named in its folder), blobs of LoRAs and generations that
/// do not exist or no longer need them, work folders of LoRAs that will not train again, and the temporary files of
/// writes a killed process cut short. Safe beside live requests and workers in any number of processes: a request's
/// folder is locked while it lives, unrecorded blobs go only after <see cref="SweeperOptions.Grace"/>, and a work folder
/// goes only once its LoRA is no longer active.
/// </summary>
public sealed class OrphanSweeper(LikenessDb db, IBlobStore blobs, PipelineOptions pipeline, IOptions<SweeperOptions> options,
    TimeProvider clock, ILogger<OrphanSweeper> logger)
{
    private const int Batch = 200;

    public async Task<SweepReport> SweepAsync(CancellationToken ct)
    {
        var cutoff = clock.GetUtcNow() - options.Value.Grace;
        var (staging, copying) = await SweepStagingAsync(cutoff, ct);
        var loraBlobs = await SweepLoraBlobsAsync(cutoff, copying, ct);
        var generationBlobs = await SweepGenerationBlobsAsync(cutoff, ct);
        var work = await SweepWorkFolderAsync(cutoff, ct);
        var writes = await blobs.RemoveInterruptedWritesAsync(cutoff, ct);
        var report = new SweepReport(staging, loraBlobs + generationBlobs, work, writes);
        if (report.Total > 0)
            logger.LogInformation("Orphan sweep removed {Staging} staging folders, {Blobs} blobs, {Work} work folders and {Writes} interrupted writes",
                report.StagingFolders, report.Blobs, report.WorkFolders, report.InterruptedWrites);
        return report;
    }

    /// <summary>
    /// Folders whose request is gone; the photos such a request had begun to copy go too unless its LoRA exists.
    /// Returns how many went, and the LoRAs whose photos live requests on this node are copying right now.
    /// </summary>
    private async Task<(int Removed, HashSet<string> Copying)> SweepStagingAsync(DateTimeOffset cutoff, CancellationToken ct)
    {
        var copying = new HashSet<string>(StringComparer.Ordinal);
        if (pipeline.StagingFolder is not { } root || !Directory.Exists(root)) return (0, copying);
        var removed = 0;
        foreach (var folder in Directory.EnumerateDirectories(root))
        {
            using var abandoned = StagingFolder.TryTakeAbandoned(folder, cutoff);
            if (abandoned is null)
            {
                if (StagingFolder.RecordedLora(folder) is { } live) copying.Add(live);
                continue;
            }
            if (abandoned.LoraId is { } loraId && !await db.Loras.AsNoTracking().AnyAsync(l => l.Id == loraId, ct))
                await blobs.DeletePrefixAsync(BlobKeys.LoraPrefix(loraId), ct);
            removed++;
        }
        return (removed, copying);
    }

    /// <summary>
    /// <c>loras/ID/…</c>: everything of a LoRA that does not exist (once older than the grace period: its request may be
    /// copying on another node; never while a live request here is) or was purged (a purge cut short); the dataset and
    /// adapter of one that failed before READY.
    /// </summary>
    private async Task<int> SweepLoraBlobsAsync(DateTimeOffset cutoff, HashSet<string> copying, CancellationToken ct)
    {
        var removed = 0;
        await foreach (var batch in GroupsAsync(BlobKeys.LorasRoot, ct))
        {
            var ids = batch.Select(g => g.Id).ToList();
            var rows = await db.Loras.AsNoTracking().Where(l => ids.Contains(l.Id))
                .Select(l => new { l.Id, l.Status, l.Purged, l.ErrorCode }).ToDictionaryAsync(l => l.Id, ct);
            foreach (var group in batch)
            {
                if (!rows.TryGetValue(group.Id, out var lora))
                {
                    if (group.Newest < cutoff && !copying.Contains(group.Id))
                        removed += await DeleteAsync(BlobKeys.LoraPrefix(group.Id), group.Blobs.Count, ct);
                    continue;
                }
                if (lora.Purged)
                {
                    removed += await DeleteAsync(BlobKeys.LoraPrefix(group.Id), group.Blobs.Count, ct);
                    continue;
                }
                var neverReady = lora.Status == LoraStatus.Failed || (lora.Status == LoraStatus.Archived && lora.ErrorCode is not null);
                if (!neverReady) continue;
                foreach (var blob in group.Blobs)
                {
                    if (blob.LastModified < cutoff && (blob.Key == BlobKeys.Dataset(group.Id) || blob.Key == BlobKeys.Adapter(group.Id)))
                        removed += await DeleteAsync(blob.Key, 1, ct);
                }
            }
        }
        return removed;
    }

    /// <summary>
    /// <c>generations/ID/…</c>: everything of a generation that does not exist or whose LoRA was purged; of a finished
    /// one, every image no row names (made, then the process died before recording it, and the generation ended without it).
    /// </summary>
    private async Task<int> SweepGenerationBlobsAsync(DateTimeOffset cutoff, CancellationToken ct)
    {
        var removed = 0;
        await foreach (var batch in GroupsAsync(BlobKeys.GenerationsRoot, ct))
        {
            var ids = batch.Select(g => g.Id).ToList();
            var rows = await db.Generations.AsNoTracking().Where(g => ids.Contains(g.Id))
                .Select(g => new { g.Id, g.Status, Purged = db.Loras.Any(l => l.Id == g.LoraId && l.Purged) }).ToDictionaryAsync(g => g.Id, ct);
            var referenced = (await db.GenerationImages.AsNoTracking().Where(i => ids.Contains(i.GenerationId))
                .Select(i => i.BlobKey).ToListAsync(ct)).ToHashSet(StringComparer.Ordinal);
            foreach (var group in batch)
            {
                if (!rows.TryGetValue(group.Id, out var generation))
                {
                    if (group.Newest < cutoff) removed += await DeleteAsync(BlobKeys.GenerationPrefix(group.Id), group.Blobs.Count, ct);
                    continue;
                }
                if (generation.Purged)
                {
                    removed += await DeleteAsync(BlobKeys.GenerationPrefix(group.Id), group.Blobs.Count, ct);
                    continue;
                }
                if (!GenerationStatus.IsTerminal(generation.Status)) continue;
                foreach (var blob in group.Blobs)
                {
                    if (blob.LastModified < cutoff && !referenced.Contains(blob.Key)) removed += await DeleteAsync(blob.Key, 1, ct);
                }
            }
        }
        return removed;
    }

    /// <summary>
    /// This node's scratch: a LoRA's folder once it is no longer active (a job that finished or failed while the process
    /// died before removing it); cached adapters of LoRAs that are gone or purged, and half-downloaded ones.
    /// </summary>
    private async Task<int> SweepWorkFolderAsync(DateTimeOffset cutoff, CancellationToken ct)
    {
        var root = pipeline.WorkFolder;
        if (!Directory.Exists(root)) return 0;
        var removed = 0;
        var adapters = pipeline.AdapterCacheFolder;
        // Only what is named for a LoRA: anything else someone keeps in the work folder is not the sweeper's to judge.
        foreach (var folders in Directory.EnumerateDirectories(root).Where(f => Ids.IsLoraId(Path.GetFileName(f))).Chunk(Batch))
        {
            var ids = folders.Select(Path.GetFileName).ToList();
            var active = (await db.Loras.AsNoTracking().Where(l => ids.Contains(l.Id) && LoraStatus.Active.Contains(l.Status))
                .Select(l => l.Id).ToListAsync(ct)).ToHashSet(StringComparer.Ordinal);
            foreach (var folder in folders)
            {
                if (active.Contains(Path.GetFileName(folder))) continue;
                if (TryDelete(folder, recursive: true)) removed++;
            }
        }
        if (Directory.Exists(adapters))
        {
            foreach (var files in Directory.EnumerateFiles(adapters).Where(f => Ids.IsLoraId(Path.GetFileName(f).Split('.')[0])).Chunk(Batch))
            {
                var ids = files.Select(f => Path.GetFileName(f).Split('.')[0]).ToList();
                var kept = (await db.Loras.AsNoTracking().Where(l => ids.Contains(l.Id) && !l.Purged).Select(l => l.Id).ToListAsync(ct))
                    .ToHashSet(StringComparer.Ordinal);
                foreach (var file in files)
                {
                    var partial = !file.EndsWith(".safetensors", StringComparison.Ordinal);
                    var orphan = !kept.Contains(Path.GetFileName(file).Split('.')[0]);
                    if ((orphan || (partial && File.GetLastWriteTimeUtc(file) < cutoff.UtcDateTime)) && TryDelete(file, recursive: false)) removed++;
                }
            }
        }
        return removed;
    }

    private async Task<int> DeleteAsync(string prefix, int count, CancellationToken ct)
    {
        await blobs.DeletePrefixAsync(prefix, ct);
        return count;
    }

    private sealed record Group(string Id, List<StoredBlob> Blobs)
    {
        public DateTimeOffset Newest => Blobs.Max(b => b.LastModified);
    }

    /// <summary>The blobs under <paramref name="root"/> grouped by the id that follows it, in batches for one query each.</summary>
    private async IAsyncEnumerable<List<Group>> GroupsAsync(string root,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        var batch = new List<Group>();
        Group? current = null;
        await foreach (var blob in blobs.EnumerateAsync(root, ct))
        {
            var rest = blob.Key[root.Length..];
            var slash = rest.IndexOf('/');
            if (slash <= 0) continue; // not an owned key
            var id = rest[..slash];
            if (current?.Id != id)
            {
                if (batch.Count == Batch)
                {
                    yield return batch;
                    batch = [];
                }
                current = new Group(id, []);
                batch.Add(current);
            }
            current.Blobs.Add(blob);
        }
        if (batch.Count > 0) yield return batch;
    }

    private bool TryDelete(string path, bool recursive)
    {
        try
        {
            if (recursive) Directory.Delete(path, recursive: true);
            else File.Delete(path);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("Could not remove {Path}: {Reason}", path, e.Message);
            return false;
        }
    }
}
