using Likeness.Core.Blobs;
using Likeness.Core.Common;
using Likeness.Core.Credits;
using Likeness.Core.Data;
using Likeness.Core.Jobs;
using Likeness.Core.Ports;
using Likeness.Core.Storage;
using Likeness.Core.TriggerWords;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace Likeness.Core.Loras;

/// <summary>
/// Accepts a validated training request: stores the photos, then in one transaction checks credits and the
/// team's cap, charges the upload fee and inserts the LoRA with its first job. A refusal, a failure or a client that
/// hangs up removes the photos again, so nothing is left behind and nothing is charged; where the process dies
/// instead, the LoRA id recorded in the staging folder before the copy lets the <see cref="Storage.OrphanSweeper"/>
/// remove them. A full storage is <see cref="CreateOutcome.InsufficientStorage"/>.
/// </summary>
public sealed class LoraCreation(LikenessDb db, IBlobStore blobs, TriggerWordGenerator triggerWords,
    IImageGenerator engine, TimeProvider clock, JobSignals signals, IdempotencyScope idempotency, LikenessMetrics metrics,
    ILogger<LoraCreation> logger)
{
    public async Task<CreateResult> CreateAsync(string teamId, byte[] creatorKeyHash, NewLora request,
        StagingFolder staging, IReadOnlyList<StagedPhoto> photos, CancellationToken ct)
    {
        var loraId = Ids.NewLoraId();
        var committed = false;
        try
        {
            staging.RecordLora(loraId);
            for (var i = 0; i < photos.Count; i++)
            {
                await using var file = File.OpenRead(photos[i].Path);
                await blobs.PutAsync(BlobKeys.Photo(loraId, i + 1, photos[i].Extension), file, ct);
            }
            var result = await InsertAsync(loraId, teamId, creatorKeyHash, request, photos.Count, ct);
            committed = result.Outcome == CreateOutcome.Created;
            if (committed)
            {
                logger.LoraCreated(loraId, teamId, photos.Count, request.Steps);
                metrics.CreditsCharged(LoraLifecycle.CreateFee, LedgerReasons.LoraCreate);
                LikenessTelemetry.TagCurrent(LikenessTelemetry.Tags.LoraId, loraId);
                signals.Notify(JobQueues.Caption);
            }
            return result;
        }
        catch (Exception ex) when (StorageErrors.IsOutOfSpace(ex))
        {
            return new CreateResult(CreateOutcome.InsufficientStorage, null);
        }
        finally
        {
            if (!committed) await RemovePhotosAsync(loraId);
        }
    }

    /// <summary>The photos of a LoRA that was not created; if even that fails, the sweeper finds them by their age.</summary>
    private async Task RemovePhotosAsync(string loraId)
    {
        try { await blobs.DeletePrefixAsync(BlobKeys.LoraPrefix(loraId), CancellationToken.None); }
        catch (Exception ex) { logger.LogWarning(ex, "Could not remove the photos of {Lora}, which was not created; the orphan sweep will", loraId); }
    }

    private async Task<CreateResult> InsertAsync(string loraId, string teamId, byte[] keyHash, NewLora r, int imageCount, CancellationToken ct)
    {
        // A trigger word taken concurrently by another team trips the unique index: try again with a new word.
        for (var attempt = 1; ; attempt++)
        {
            db.ChangeTracker.Clear();
            var now = clock.GetUtcNow().UtcDateTime;
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            if (!await CreditLedger.LockTeamAsync(db, teamId, ct)) throw new InvalidOperationException($"Team {teamId} does not exist.");

            var team = await db.Teams.AsNoTracking().SingleAsync(t => t.Id == teamId, ct);
            if (team.Credits < LoraLifecycle.CreateFee) return new CreateResult(CreateOutcome.InsufficientCredits, null);
            var active = await db.Loras.CountAsync(l => l.TeamId == teamId && LoraStatus.Active.Contains(l.Status), ct);
            if (active >= team.MaxConcurrentTrainings) return new CreateResult(CreateOutcome.ConcurrencyLimit, null);

            var word = await FreeTriggerWordAsync(ct);
            var lora = new Lora
            {
                Id = loraId, TeamId = teamId, Name = r.Name, SubjectKind = r.SubjectKind,
                Gender = r.Gender, Ethnicity = r.Ethnicity, Age = r.Age,
                Status = LoraStatus.Pending, ImageCount = imageCount, Steps = r.Steps, LoraRank = r.LoraRank,
                BaseModel = engine.BaseModel, TriggerWord = word,
                MetadataJson = r.MetadataJson, WebhookUrl = r.WebhookUrl, WebhookEvents = r.WebhookEvents,
                CreatorKeyHash = keyHash, CreditsHeld = LoraLifecycle.CreateFee, CreatedAt = now,
            };
            db.Loras.Add(lora);
            JobQueue.Enqueue(db, JobQueues.Caption, loraId, now);
            try
            {
                using (HandledConflicts.Expect()) await db.SaveChangesAsync(ct);
                if (!await CreditLedger.TryChargeAsync(db, teamId, LoraLifecycle.CreateFee, LedgerReasons.LoraCreate, now, ct, loraId: loraId))
                    return new CreateResult(CreateOutcome.InsufficientCredits, null);
                await idempotency.RecordAsync(db, loraId, ct);
                await tx.CommitAsync(ct);
                return new CreateResult(CreateOutcome.Created, lora);
            }
            catch (DbUpdateException e) when (attempt < 5 && HandledConflicts.IsUniqueViolation(e))
            {
                logger.LogInformation("Trigger word {Word} was taken by a concurrent creation; {Lora} tries another", word, loraId);
                await tx.RollbackAsync(CancellationToken.None);
            }
        }
    }

    private async Task<string> FreeTriggerWordAsync(CancellationToken ct)
    {
        while (true)
        {
            var word = triggerWords.Next();
            if (!await db.Loras.AnyAsync(l => l.TriggerWord == word, ct)) return word;
        }
    }
}
