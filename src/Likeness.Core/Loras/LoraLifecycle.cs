using Likeness.Core.Common;
using Likeness.Core.Credits;
using Likeness.Core.Data;
using Likeness.Core.Jobs;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace Likeness.Core.Loras;

/// <summary>
/// The LoRA state machine. Every transition is one transaction that also writes the ledger rows, jobs and
/// webhook outbox rows it implies; a transition that no longer applies (the LoRA moved on) changes nothing.
/// </summary>
public sealed class LoraLifecycle(LikenessDb db, TimeProvider clock, JobSignals signals, LoraFiles files, LikenessMetrics metrics,
    ILogger<LoraLifecycle> logger)
{
    public const long CreateFee = 2;
    public const long TrainingFee = 255;

    private DateTime Now => clock.GetUtcNow().UtcDateTime;

    /// <summary>PENDING → UPLOADING when a worker takes the LoRA up. False when the LoRA is no longer pending or uploading.</summary>
    public Task<bool> BeginUploadingAsync(string loraId, CancellationToken ct) =>
        TransitionAsync(loraId, ct, async lora =>
        {
            if (lora.Status == LoraStatus.Uploading) return true;
            if (lora.Status != LoraStatus.Pending) return false;
            lora.Status = LoraStatus.Uploading;
            lora.StartedAt = Now;
            await Task.CompletedTask;
            return true;
        });

    /// <summary>The dataset is stored: queue the training.</summary>
    public Task<bool> DatasetReadyAsync(string loraId, CancellationToken ct) =>
        TransitionAsync(loraId, ct, async lora =>
        {
            if (lora.Status != LoraStatus.Uploading) return false;
            if (!await db.Jobs.AnyAsync(j => j.SubjectId == loraId && j.Queue == JobQueues.Training, ct))
                JobQueue.Enqueue(db, JobQueues.Training, loraId, Now);
            return true;
        }, notify: JobQueues.Training);

    /// <summary>
    /// Charges the training fee just before training starts and moves to TRAINING. A LoRA already in TRAINING
    /// (its worker died and another resumes it) is not charged twice. Without the credits it fails and is refunded.
    /// </summary>
    public async Task<bool> BeginTrainingAsync(string loraId, CancellationToken ct)
    {
        var insufficient = false;
        var charged = false;
        var ok = await TransitionAsync(loraId, ct, async lora =>
        {
            charged = false;
            if (lora.Status == LoraStatus.Training) return true;
            if (lora.Status != LoraStatus.Uploading) return false;
            if (!await CreditLedger.TryChargeAsync(db, lora.TeamId, TrainingFee, LedgerReasons.LoraTraining, Now, ct, loraId: lora.Id))
            {
                insufficient = true;
                return false;
            }
            lora.CreditsHeld += TrainingFee;
            charged = true;
            lora.Status = LoraStatus.Training;
            lora.TrainingStartedAt = Now;
            lora.ProgressStep = 0;
            lora.ProgressTotal = lora.Steps;
            return true;
        });
        if (ok && charged) metrics.CreditsCharged(TrainingFee, LedgerReasons.LoraTraining);
        if (insufficient)
        {
            await FailAsync(loraId, "insufficient_credits",
                $"The team's balance did not cover the training fee of {TrainingFee} credits.", ct);
        }
        return ok;
    }

    /// <summary>
    /// UPLOADING's progress: photos captioned out of all of them, in the progress fields that training takes over
    /// (<see cref="BeginTrainingAsync"/> resets them).
    /// </summary>
    public async Task ReportCaptioningAsync(string loraId, int captioned, int total, CancellationToken ct) =>
        await db.Loras.Where(l => l.Id == loraId && l.Status == LoraStatus.Uploading)
            .ExecuteUpdateAsync(s => s
                .SetProperty(l => l.ProgressStep, captioned)
                .SetProperty(l => l.ProgressTotal, total), ct);

    public async Task ReportProgressAsync(string loraId, int step, int total, int? etaSeconds, double? loss, CancellationToken ct) =>
        await db.Loras.Where(l => l.Id == loraId && l.Status == LoraStatus.Training)
            .ExecuteUpdateAsync(s => s
                .SetProperty(l => l.ProgressStep, step)
                .SetProperty(l => l.ProgressTotal, total)
                .SetProperty(l => l.EtaSeconds, etaSeconds)
                .SetProperty(l => l.Loss, loss), ct);

    /// <summary>TRAINING → READY: the adapter is stored; the trigger word is revealed; the completed webhook is queued.</summary>
    public async Task<bool> CompleteAsync(string loraId, CancellationToken ct)
    {
        var ready = await TransitionAsync(loraId, ct, async lora =>
        {
            if (lora.Status != LoraStatus.Training) return false;
            lora.Status = LoraStatus.Ready;
            lora.CompletedAt = Now;
            lora.ProgressStep = lora.Steps;
            lora.ProgressTotal = lora.Steps;
            lora.EtaSeconds = 0;
            await LoraWebhookEvents.EnqueueAsync(db, lora, Now, ct);
            return true;
        }, notify: JobQueues.Webhook);
        if (ready) logger.LoraReady(loraId);
        return ready;
    }

    /// <summary>Any non-terminal state → FAILED with every credit it holds refunded and the failed webhook queued.</summary>
    public async Task<bool> FailAsync(string loraId, string code, string message, CancellationToken ct)
    {
        long refunded = 0;
        var failed = await TransitionAsync(loraId, ct, async lora =>
        {
            if (!LoraStatus.IsActive(lora.Status)) return false;
            refunded = await FailInsideAsync(lora, code, message, ct);
            return true;
        }, notify: JobQueues.Webhook);
        if (failed) await DiscardAfterFailureAsync(loraId, code, message, refunded);
        return failed;
    }

    /// <summary>Cancel before READY. Returns the outcome for the endpoint.</summary>
    public async Task<CancelResult> CancelAsync(string teamId, string loraId, CancellationToken ct)
    {
        var result = CancelResult.NotFound;
        long refunded = 0;
        await TransitionAsync(loraId, ct, async lora =>
        {
            if (lora.TeamId != teamId) return false;
            if (!LoraStatus.IsActive(lora.Status))
            {
                result = CancelResult.NotCancellable;
                return false;
            }
            refunded = await FailInsideAsync(lora, Canceled, CancelledMessage, ct);
            result = CancelResult.Cancelled;
            return true;
        }, notify: JobQueues.Webhook);
        if (result == CancelResult.Cancelled) await DiscardAfterFailureAsync(loraId, Canceled, CancelledMessage, refunded);
        return result;
    }

    /// <summary>Soft-archive (idempotent). A LoRA not yet READY is first cancelled exactly as by cancel.</summary>
    public async Task<bool> ArchiveAsync(string teamId, string loraId, CancellationToken ct)
    {
        var found = false;
        var canceled = false;
        long refunded = 0;
        await TransitionAsync(loraId, ct, async lora =>
        {
            if (lora.TeamId != teamId) return false;
            found = true;
            if (LoraStatus.IsActive(lora.Status))
            {
                refunded = await FailInsideAsync(lora, Canceled, ArchivedMessage, ct);
                canceled = true;
            }
            if (lora.Status == LoraStatus.Archived) return false;
            lora.Status = LoraStatus.Archived;
            lora.ArchivedAt = Now;
            return true;
        }, notify: JobQueues.Webhook);
        if (canceled) await DiscardAfterFailureAsync(loraId, Canceled, ArchivedMessage, refunded);
        return found;
    }

    private const string Canceled = "canceled";
    private const string CancelledMessage = "The training was cancelled.";
    private const string ArchivedMessage = "The LoRA was archived before it was ready.";

    /// <summary>After the FAILED transition has committed: say so, count the refund, and remove the dataset it no longer needs.</summary>
    private async Task DiscardAfterFailureAsync(string loraId, string code, string message, long refunded)
    {
        logger.LoraFailed(loraId, code, message);
        metrics.CreditsRefunded(refunded, LikenessMetrics.Subjects.Lora);
        await files.DiscardDatasetAsync(loraId, CancellationToken.None);
    }

    /// <summary>Marks the LoRA FAILED inside the caller's transaction; returns the credits it refunded.</summary>
    private async Task<long> FailInsideAsync(Lora lora, string code, string message, CancellationToken ct)
    {
        var refunded = lora.CreditsHeld;
        if (refunded > 0)
        {
            await CreditLedger.CreditAsync(db, lora.TeamId, refunded, LedgerReasons.Refund, Now, ct, loraId: lora.Id);
            lora.CreditsHeld = 0;
        }
        lora.Status = LoraStatus.Failed;
        lora.ErrorCode = code;
        lora.ErrorMessage = message;
        lora.CompletedAt = Now;
        lora.EtaSeconds = null;
        await LoraWebhookEvents.EnqueueAsync(db, lora, Now, ct);
        return Math.Max(0, refunded);
    }

    /// <summary>Runs <paramref name="change"/> on the freshly read LoRA inside a write transaction holding the team lock.</summary>
    private async Task<bool> TransitionAsync(string loraId, CancellationToken ct, Func<Lora, Task<bool>> change, string? notify = null)
    {
        var strategy = db.Database.CreateExecutionStrategy();
        var changed = await strategy.ExecuteAsync(async () =>
        {
            db.ChangeTracker.Clear();
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            var teamId = await db.Loras.Where(l => l.Id == loraId).Select(l => l.TeamId).SingleOrDefaultAsync(ct);
            if (teamId is null) return false;
            await CreditLedger.LockTeamAsync(db, teamId, ct);
            var lora = await db.Loras.SingleAsync(l => l.Id == loraId, ct);
            var result = await change(lora);
            await db.SaveChangesAsync(ct);
            await tx.CommitAsync(ct);
            return result;
        });
        if (changed && notify is not null) signals.Notify(notify);
        return changed;
    }
}

public enum CancelResult { NotFound, NotCancellable, Cancelled }
