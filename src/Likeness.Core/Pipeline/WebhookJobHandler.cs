using Likeness.Core.Common;
using Likeness.Core.Data;
using Likeness.Core.Jobs;
using Likeness.Core.Webhooks;
using Microsoft.EntityFrameworkCore;

namespace Likeness.Core.Pipeline;

/// <summary>
/// Delivers one outbox message per attempt, records the attempt, and schedules the next one; the message keeps
/// one <c>webhook-id</c> across all its attempts. At-least-once: a crash between sending and recording re-sends.
/// </summary>
public sealed class WebhookJobHandler(LikenessDb db, WebhookDeliverer deliverer, WebhookRetrySchedule schedule, TimeProvider clock,
    LikenessMetrics metrics) : IJobHandler
{
    public int MaxAttempts => int.MaxValue; // the retry schedule, not the job's attempt count, bounds deliveries

    public async Task<JobOutcome> HandleAsync(Job job, CancellationToken ct)
    {
        var message = await db.WebhookMessages.SingleAsync(m => m.Id == job.SubjectId, ct);
        if (message.State != "pending") return JobOutcome.Done;

        var result = await deliverer.DeliverAsync(message.Url, message.Id, message.PayloadJson, message.SecretHash, ct);
        var now = clock.GetUtcNow();
        message.Attempts++;
        var next = result.Succeeded || result.StopRetrying ? null : schedule.NextAttemptAt(message.Attempts, now);
        db.WebhookAttempts.Add(new WebhookAttempt
        {
            MessageId = message.Id, LoraId = message.LoraId, Attempt = message.Attempts, AttemptedAt = now.UtcDateTime,
            StatusCode = result.StatusCode, Error = result.Error, DurationMs = (int)result.Duration.TotalMilliseconds,
            Succeeded = result.Succeeded, NextAttemptAt = next?.UtcDateTime,
        });
        if (result.Succeeded)
        {
            message.State = "delivered";
            message.DeliveredAt = now.UtcDateTime;
        }
        else if (next is null) message.State = "failed";
        await db.SaveChangesAsync(ct);
        metrics.WebhookDelivery(
            result.Succeeded ? LikenessMetrics.Outcomes.Delivered : next is null ? LikenessMetrics.Outcomes.Failed : LikenessMetrics.Outcomes.Retrying,
            message.EventType);

        if (next is { } when) return JobOutcome.RetryAt(when.UtcDateTime, result.Error ?? $"HTTP {result.StatusCode}");
        return result.Succeeded ? JobOutcome.Done : JobOutcome.Failed(result.Error ?? $"HTTP {result.StatusCode}");
    }

    public async Task GiveUpAsync(Job job, string error, CancellationToken ct) =>
        await db.WebhookMessages.Where(m => m.Id == job.SubjectId && m.State == "pending")
            .ExecuteUpdateAsync(s => s.SetProperty(m => m.State, "failed"), ct);
}
