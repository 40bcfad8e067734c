using System.Text.Json;
using Likeness.Core.Blobs;
using Likeness.Core.Common;
using Likeness.Core.Credits;
using Likeness.Core.Data;
using Likeness.Core.Generations;
using Likeness.Core.Jobs;
using Likeness.Core.Ports;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace Likeness.Core.Pipeline;

/// <summary>
/// Makes a generation's images one by one (image i with seed + i), storing each as it is made, so a worker
/// that takes over skips what exists. At the end every image not delivered is refunded.
/// </summary>
public sealed class GenerationJobHandler(LikenessDb db, IBlobStore blobs, IImageGenerator generator,
    PipelineOptions options, TimeProvider clock, LikenessMetrics metrics, ILogger<GenerationJobHandler> logger) : IJobHandler
{
    public int MaxAttempts => 2;

    public async Task<JobOutcome> HandleAsync(Job job, CancellationToken ct)
    {
        var g = await db.Generations.Include(x => x.Images).SingleAsync(x => x.Id == job.SubjectId, ct);
        if (GenerationStatus.IsTerminal(g.Status)) return JobOutcome.Done;
        g.Status = GenerationStatus.Running;
        await db.SaveChangesAsync(ct);

        var p = JsonSerializer.Deserialize<GenerationParams>(g.ParamsJson)!;
        var (format, extension, contentType) = p.OutputFormat switch
        {
            "jpg" => (ImageFormat.Jpeg, "jpg", "image/jpeg"),
            "webp" => (ImageFormat.Webp, "webp", "image/webp"),
            _ => (ImageFormat.Png, "png", "image/png"),
        };
        string? adapter = null;
        string? lastError = null;
        try
        {
            adapter = await BlobFiles.DownloadAsync(blobs, BlobKeys.Adapter(g.LoraId),
                options.CachedAdapter(g.LoraId), ct);
        }
        catch (FileNotFoundException) { lastError = "The LoRA's adapter is no longer stored (it was purged)."; }

        for (var i = 0; adapter is not null && i < g.NumOutputs; i++)
        {
            if (g.Images.Any(x => x.Index == i)) continue;
            var seed = g.Seed + i;
            try
            {
                var image = await generator.GenerateAsync(new GenerationRequest(adapter, g.Prompt, p.Width, p.Height, seed,
                    (float)p.LoraStrength, (float)p.GuidanceScale, p.NumInferenceSteps, format), ct);
                var key = BlobKeys.GeneratedImage(g.Id, i, extension);
                using (var bytes = new MemoryStream(image.Bytes)) await blobs.PutAsync(key, bytes, ct);
                g.Images.Add(new GenerationImage
                {
                    GenerationId = g.Id, Index = i, BlobKey = key, Width = image.Width, Height = image.Height,
                    ContentType = contentType, Seed = seed,
                });
                await db.SaveChangesAsync(ct);
                metrics.ImageGenerated(generator.BaseModel);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning(ex, "Image {Index} of generation {Generation} failed", i, g.Id);
                lastError = ex.Message;
            }
        }
        await FinishAsync(g.Id, lastError, ct);
        return JobOutcome.Done;
    }

    public Task GiveUpAsync(Job job, string error, CancellationToken ct) => FinishAsync(job.SubjectId, error, ct);

    /// <summary>COMPLETED with what was made (the rest refunded), or FAILED with everything refunded.</summary>
    private async Task FinishAsync(string generationId, string? error, CancellationToken ct)
    {
        db.ChangeTracker.Clear();
        var now = clock.GetUtcNow().UtcDateTime;
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var g = await db.Generations.Include(x => x.Images).SingleAsync(x => x.Id == generationId, ct);
        if (GenerationStatus.IsTerminal(g.Status)) return;
        await CreditLedger.LockTeamAsync(db, g.TeamId, ct);
        var delivered = g.Images.Count;
        var refund = g.CreditsCharged - GenerationCreation.CreditsPerImage * delivered;
        if (refund > 0)
            await CreditLedger.CreditAsync(db, g.TeamId, refund, LedgerReasons.Refund, now, ct, generationId: g.Id);
        g.CreditsCharged -= refund;
        g.Status = delivered > 0 ? GenerationStatus.Completed : GenerationStatus.Failed;
        if (delivered == 0)
        {
            g.ErrorCode = "generation_failed";
            g.ErrorMessage = error ?? "No image could be made.";
        }
        g.CompletedAt = now;
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        metrics.CreditsRefunded(refund, LikenessMetrics.Subjects.Generation);
        logger.GenerationDone(g.Id, g.LoraId, g.Status, delivered, g.NumOutputs, Math.Max(0, refund));
    }
}
