using Likeness.Core.Common;
using Likeness.Core.Data;
using Microsoft.EntityFrameworkCore;

namespace Likeness.Core.Jobs;

/// <summary>
/// The durable job table. Claims are optimistic: pick the oldest runnable job, then take it with a conditional
/// UPDATE that only one claimant can win, so any number of workers in any number of processes cooperate.
/// A running job whose lease has expired (its worker died) is runnable again.
/// </summary>
public static class JobQueue
{
    /// <summary>
    /// Adds a job to the caller's unit of work; it becomes visible when the caller commits. The job carries the
    /// current trace context, so its runs join the trace of the request (or job) that asked for it.
    /// </summary>
    public static Job Enqueue(LikenessDb db, string queue, string subjectId, DateTime now, DateTime? runAfter = null)
    {
        var job = new Job
        {
            Queue = queue, SubjectId = subjectId, State = JobStates.Queued,
            RunAfter = runAfter ?? now, CreatedAt = now, TraceParent = LikenessTelemetry.CurrentTraceParent(),
        };
        db.Jobs.Add(job);
        return job;
    }

    public static async Task<Job?> ClaimAsync(LikenessDb db, string queue, string owner, TimeSpan lease, DateTime now, CancellationToken ct)
    {
        if (db.SupportsRowLocks) return await ClaimSkipLockedAsync(db, queue, owner, lease, now, ct);
        for (var tries = 0; tries < 5; tries++)
        {
            var candidate = await db.Jobs.AsNoTracking()
                .Where(j => j.Queue == queue &&
                            ((j.State == JobStates.Queued && j.RunAfter <= now) ||
                             (j.State == JobStates.Running && j.LeaseExpiresAt < now)))
                .OrderBy(j => j.RunAfter).ThenBy(j => j.Id)
                .Select(j => new { j.Id, j.State, j.LeaseOwner, j.Attempts })
                .FirstOrDefaultAsync(ct);
            if (candidate is null) return null;

            var expires = now + lease;
            var won = await db.Jobs
                .Where(j => j.Id == candidate.Id && j.State == candidate.State && j.Attempts == candidate.Attempts)
                .ExecuteUpdateAsync(s => s
                    .SetProperty(j => j.State, JobStates.Running)
                    .SetProperty(j => j.LeaseOwner, owner)
                    .SetProperty(j => j.LeaseExpiresAt, expires)
                    .SetProperty(j => j.Attempts, j => j.Attempts + 1), ct);
            if (won == 1) return await db.Jobs.AsNoTracking().SingleAsync(j => j.Id == candidate.Id, ct);
        }
        return null;
    }

    /// <summary>
    /// PostgreSQL: one statement picks the oldest runnable job that no other transaction has locked and takes it,
    /// so concurrent claimants never wait on each other or collide (FOR UPDATE SKIP LOCKED).
    /// </summary>
    private static async Task<Job?> ClaimSkipLockedAsync(LikenessDb db, string queue, string owner, TimeSpan lease, DateTime now, CancellationToken ct)
    {
        var expires = now + lease;
        var claimed = await db.Jobs.FromSqlInterpolated($"""
            UPDATE jobs SET "State" = 'running', "LeaseOwner" = {owner}, "LeaseExpiresAt" = {expires}, "Attempts" = "Attempts" + 1
            WHERE "Id" = (
                SELECT "Id" FROM jobs
                WHERE "Queue" = {queue}
                  AND (("State" = 'queued' AND "RunAfter" <= {now}) OR ("State" = 'running' AND "LeaseExpiresAt" < {now}))
                ORDER BY "RunAfter", "Id"
                LIMIT 1
                FOR UPDATE SKIP LOCKED)
            RETURNING *
            """).AsNoTracking().ToListAsync(ct);
        return claimed.SingleOrDefault();
    }

    /// <summary>Extends the lease; false when the job is no longer ours (taken over or finished).</summary>
    public static async Task<bool> RenewAsync(LikenessDb db, long jobId, string owner, TimeSpan lease, DateTime now, CancellationToken ct) =>
        await db.Jobs.Where(j => j.Id == jobId && j.LeaseOwner == owner && j.State == JobStates.Running)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.LeaseExpiresAt, now + lease), ct) == 1;

    public static async Task<bool> FinishAsync(LikenessDb db, long jobId, string owner, string state, string? error, DateTime now, CancellationToken ct) =>
        await db.Jobs.Where(j => j.Id == jobId && j.LeaseOwner == owner && j.State == JobStates.Running)
            .ExecuteUpdateAsync(s => s
                .SetProperty(j => j.State, state)
                .SetProperty(j => j.LastError, error)
                .SetProperty(j => j.FinishedAt, now)
                .SetProperty(j => j.LeaseExpiresAt, (DateTime?)null), ct) == 1;

    /// <summary>Puts the job back in the queue to run at <paramref name="runAfter"/> (a retry, or a graceful hand-back).</summary>
    public static async Task<bool> RequeueAsync(LikenessDb db, long jobId, string owner, DateTime runAfter, string? error,
        bool countAttempt, CancellationToken ct) =>
        await db.Jobs.Where(j => j.Id == jobId && j.LeaseOwner == owner && j.State == JobStates.Running)
            .ExecuteUpdateAsync(s => s
                .SetProperty(j => j.State, JobStates.Queued)
                .SetProperty(j => j.RunAfter, runAfter)
                .SetProperty(j => j.LastError, error)
                .SetProperty(j => j.LeaseOwner, (string?)null)
                .SetProperty(j => j.LeaseExpiresAt, (DateTime?)null)
                .SetProperty(j => j.Attempts, j => countAttempt ? j.Attempts : j.Attempts - 1), ct) == 1;
}
