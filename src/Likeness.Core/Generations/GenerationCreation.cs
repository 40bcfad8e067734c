using System.Text.Json;
using Likeness.Core.Common;
using Likeness.Core.Credits;
using Likeness.Core.Data;
using Likeness.Core.Jobs;
using Microsoft.EntityFrameworkCore;

namespace Likeness.Core.Generations;

public enum GenerationRefusal { None, NotFound, Archived, NotReady, InsufficientCredits }

/// <summary>Accepts a generation: in one transaction charges 2 credits per image, inserts it and queues its job.</summary>
public sealed class GenerationCreation(LikenessDb db, TimeProvider clock, JobSignals signals, IdempotencyScope idempotency, LikenessMetrics metrics)
{
    public const long CreditsPerImage = 2;

    public async Task<(GenerationRefusal Refusal, Generation? Generation)> CreateAsync(
        string teamId, string prompt, GenerationParams p, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await CreditLedger.LockTeamAsync(db, teamId, ct);
        var lora = await db.Loras.AsNoTracking().SingleOrDefaultAsync(l => l.Id == p.LoraId && l.TeamId == teamId, ct);
        if (lora is null) return (GenerationRefusal.NotFound, null);
        if (lora.Status == LoraStatus.Archived) return (GenerationRefusal.Archived, null);
        if (lora.Status != LoraStatus.Ready) return (GenerationRefusal.NotReady, null);

        var generation = new Generation
        {
            Id = Ids.NewGenerationId(), TeamId = teamId, LoraId = lora.Id, Status = GenerationStatus.Pending,
            Model = "flux-lora", Prompt = TriggerPrompt.Apply(prompt, lora.TriggerWord),
            ParamsJson = JsonSerializer.Serialize(p), NumOutputs = p.NumOutputs, Seed = p.Seed,
            CreditsCharged = CreditsPerImage * p.NumOutputs, CreatedAt = now,
        };
        db.Generations.Add(generation);
        await db.SaveChangesAsync(ct);
        if (!await CreditLedger.TryChargeAsync(db, teamId, generation.CreditsCharged, LedgerReasons.Generation, now, ct, generationId: generation.Id))
            return (GenerationRefusal.InsufficientCredits, null);
        JobQueue.Enqueue(db, JobQueues.Generation, generation.Id, now);
        await db.SaveChangesAsync(ct);
        await idempotency.RecordAsync(db, generation.Id, ct);
        await tx.CommitAsync(ct);
        metrics.CreditsCharged(generation.CreditsCharged, LedgerReasons.Generation);
        LikenessTelemetry.TagCurrent(LikenessTelemetry.Tags.GenerationId, generation.Id);
        signals.Notify(JobQueues.Generation);
        return (GenerationRefusal.None, generation);
    }
}
