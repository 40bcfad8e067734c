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
        await DeleteFolderAsync(options.LoraWorkFolder(loraId));
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
        await DeleteFolderAsync(options.LoraWorkFolder(loraId));
        var cached = options.CachedAdapter(loraId);
        if (File.Exists(cached)) File.Delete(cached);
    }

    /// <summary>
    /// A training being cancelled may still write a checkpoint into its folder for a moment (it stops at its next
    /// heartbeat, and its handler discards the folder again then): a file that appears while the folder is deleted
    /// makes the delete try again shortly, not the request fail (seen as a 500 on cancel in PurgeTests).
    /// </summary>
    private static async Task DeleteFolderAsync(string folder)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
                return;
            }
            catch (IOException) when (attempt < 5)
            {
                await Task.Delay(100 * attempt);
            }
        }
    }
}
