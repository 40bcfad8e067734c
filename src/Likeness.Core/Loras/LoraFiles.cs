using Likeness.Core.Blobs;
using Likeness.Core.Data;
using Likeness.Core.Pipeline;
using Likeness.Core.Ports;
using Microsoft.EntityFrameworkCore;

namespace Likeness.Core.Loras;

/// <summary>
/// Every byte derived from a subject's photos: the photos, the dataset zip (normalised photos and captions) and the
/// adapter in the blob store, the generated images, and on this node the work folder (dataset copy, checkpoints) and
/// the generation adapter cache.
/// </summary>
public sealed class LoraFiles(LikenessDb db, IBlobStore blobs, PipelineOptions options)
{
    /// <summary>A LoRA that will never train (cancelled, failed): its dataset and work folder go; the uploaded photos stay until purge.</summary>
    public async Task DiscardDatasetAsync(string loraId, CancellationToken ct)
    {
        await blobs.DeletePrefixAsync(BlobKeys.Dataset(loraId), ct);
        DeleteFolder(options.LoraWorkFolder(loraId));
    }

    /// <summary>
    /// For a subject who withdraws consent: everything above is erased; the records and the ledger stay, marked purged.
    /// The mark comes first, so that a purge cut short (the process dies, the store fails) is finished by the orphan sweeper.
    /// </summary>
    public async Task PurgeAsync(string loraId, CancellationToken ct)
    {
        await db.Loras.Where(l => l.Id == loraId).ExecuteUpdateAsync(s => s.SetProperty(l => l.Purged, true), ct);
        var generationIds = await db.Generations.Where(g => g.LoraId == loraId).Select(g => g.Id).ToListAsync(ct);
        await blobs.DeletePrefixAsync(BlobKeys.LoraPrefix(loraId), ct);
        foreach (var g in generationIds) await blobs.DeletePrefixAsync(BlobKeys.GenerationPrefix(g), ct);
        DeleteFolder(options.LoraWorkFolder(loraId));
        var cached = options.CachedAdapter(loraId);
        if (File.Exists(cached)) File.Delete(cached);
    }

    private static void DeleteFolder(string folder)
    {
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
    }
}
