using System.Diagnostics;
using Likeness.Core.Common;
using Likeness.Core.Data;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Likeness.Core.Jobs;

/// <summary>
/// One worker loop for one queue: claim → run the handler while a heartbeat renews the lease → settle.
/// On shutdown the running job is handed back (lease cleared, attempt not counted) so another worker resumes it.
/// The host always supplies <paramref name="metrics"/>; it is optional for code that runs workers alone (the queue bench).
/// </summary>
public sealed class JobWorker(
    string queue,
    IServiceScopeFactory scopes,
    JobSignals signals,
    IOptions<WorkerOptions> options,
    TimeProvider clock,
    ILogger<JobWorker> logger,
    LikenessMetrics? metrics = null) : BackgroundService
{
    private readonly WorkerOptions _options = options.Value;
    private readonly string _owner = $"{options.Value.WorkerId}/{queue}/{Guid.NewGuid().ToString("N")[..6]}";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        while (!stoppingToken.IsCancellationRequested)
        {
            Job? job;
            try
            {
                using var scope = scopes.CreateScope();
                var db = scope.ServiceProvider.GetRequiredService<LikenessDb>();
                job = await JobQueue.ClaimAsync(db, queue, _owner, _options.Lease, Now, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { return; }
            catch (Exception ex)
            {
                logger.LogWarning(ex, "Claiming from {Queue} failed; retrying", queue);
                await Delay(_options.PollInterval, stoppingToken);
                continue;
            }

            if (job is null)
            {
                await signals.WaitAsync(queue, _options.PollInterval, stoppingToken);
                continue;
            }
            await RunAsync(job, stoppingToken);
        }
    }

    private DateTime Now => clock.GetUtcNow().UtcDateTime;

    private async Task RunAsync(Job job, CancellationToken stoppingToken)
    {
        // The span first, so that the log scope and every line inside carry its trace and span ids.
        using var activity = LikenessTelemetry.StartJob(job);
        using var logScope = logger.JobScope(job);
        logger.JobClaimed(job.Id, queue, job.SubjectId, job.Attempts);
        metrics?.JobClaimed(queue);
        var started = Stopwatch.GetTimestamp();
        using var scope = scopes.CreateScope();
        var handler = scope.ServiceProvider.GetRequiredKeyedService<IJobHandler>(queue);
        using var jobCts = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        var unwanted = false;
        var heartbeat = HeartbeatAsync(job, jobCts, () => unwanted = true);

        JobOutcome outcome;
        string? error = null;
        try
        {
            if (job.Attempts > handler.MaxAttempts)
            {
                outcome = JobOutcome.Failed($"gave up after {job.Attempts - 1} attempts");
                await handler.GiveUpAsync(job, "The job was interrupted too many times.", CancellationToken.None);
            }
            else
            {
                outcome = await handler.HandleAsync(job, jobCts.Token);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            await jobCts.CancelAsync();
            await heartbeat;
            await SettleAsync(db => JobQueue.RequeueAsync(db, job.Id, _owner, Now, "handed back at shutdown", countAttempt: false, CancellationToken.None));
            logger.LogInformation("Handed job {Job} ({Queue}) back at shutdown", job.Id, queue);
            activity?.SetTag(LikenessTelemetry.Tags.JobOutcome, LikenessMetrics.Outcomes.HandedBack);
            return;
        }
        catch (OperationCanceledException) when (unwanted)
        {
            outcome = JobOutcome.Failed("subject no longer wants the work");
        }
        catch (OperationCanceledException) when (jobCts.IsCancellationRequested)
        {
            // The lease was lost: another worker owns the job now, so there is nothing to settle here.
            await heartbeat;
            activity?.SetTag(LikenessTelemetry.Tags.JobOutcome, LikenessMetrics.Outcomes.LeaseLost);
            return;
        }
        catch (Exception ex)
        {
            error = ex.Message;
            activity?.AddException(ex);
            logger.LogWarning(ex, "Job {Job} ({Queue}) attempt {Attempt} failed", job.Id, queue, job.Attempts);
            if (job.Attempts >= handler.MaxAttempts)
            {
                outcome = JobOutcome.Failed(ex.Message);
                try { await handler.GiveUpAsync(job, ex.Message, CancellationToken.None); }
                catch (Exception giveUpError) { logger.LogError(giveUpError, "Giving up job {Job} failed", job.Id); }
            }
            else
            {
                var backoff = TimeSpan.FromSeconds(Math.Min(60, Math.Pow(2, job.Attempts)));
                outcome = JobOutcome.RetryAt(Now + backoff, ex.Message);
            }
        }

        await jobCts.CancelAsync();
        await heartbeat;
        await SettleAsync(db => outcome switch
        {
            RetryOutcome r => JobQueue.RequeueAsync(db, job.Id, _owner, r.When, error ?? r.Reason, countAttempt: error is not null, CancellationToken.None),
            FailedOutcome f => JobQueue.FinishAsync(db, job.Id, _owner, JobStates.Failed, f.Reason, Now, CancellationToken.None),
            _ => JobQueue.FinishAsync(db, job.Id, _owner, JobStates.Done, null, Now, CancellationToken.None),
        });
        var elapsed = Stopwatch.GetElapsedTime(started);
        var elapsedMs = (long)elapsed.TotalMilliseconds;
        switch (outcome)
        {
            case RetryOutcome r:
                signals.Notify(queue);
                Settled(LikenessMetrics.Outcomes.Retry, r.Reason);
                break;
            case FailedOutcome f:
                logger.JobFailed(job.Id, queue, elapsedMs, f.Reason);
                Settled(LikenessMetrics.Outcomes.Failed, f.Reason);
                break;
            default:
                logger.JobFinished(job.Id, queue, elapsedMs);
                Settled(LikenessMetrics.Outcomes.Completed, null);
                break;
        }

        void Settled(string how, string? reason)
        {
            metrics?.JobSettled(queue, how, elapsed);
            activity?.SetTag(LikenessTelemetry.Tags.JobOutcome, how);
            if (how != LikenessMetrics.Outcomes.Completed) activity?.SetStatus(ActivityStatusCode.Error, reason);
        }
    }

    /// <summary>
    /// Runs beside the handler, so it never touches the handler's scope: EF Core contexts are not thread-safe, and the
    /// handler may be using its own at this moment. Each beat resolves a fresh scope, context and handler instance.
    /// </summary>
    private async Task HeartbeatAsync(Job job, CancellationTokenSource jobCts, Action markUnwanted)
    {
        LikenessTelemetry.Detach();
        // Renew well before the lease runs out, and look often enough that a cancel stops the work within seconds.
        var period = TimeSpan.FromTicks(Math.Min((_options.Lease / 3).Ticks, TimeSpan.FromSeconds(2).Ticks));
        while (!jobCts.IsCancellationRequested)
        {
            await Delay(period, jobCts.Token);
            if (jobCts.IsCancellationRequested) return;
            try
            {
                using var scope = scopes.CreateScope();
                var db = scope.ServiceProvider.GetRequiredService<LikenessDb>();
                if (!await JobQueue.RenewAsync(db, job.Id, _owner, _options.Lease, Now, jobCts.Token))
                {
                    logger.LogWarning("Lost the lease on job {Job}; stopping it", job.Id);
                    await jobCts.CancelAsync();
                    return;
                }
                var handler = scope.ServiceProvider.GetRequiredKeyedService<IJobHandler>(queue);
                if (!await handler.IsStillWantedAsync(job, jobCts.Token))
                {
                    markUnwanted();
                    await jobCts.CancelAsync();
                    return;
                }
            }
            catch (OperationCanceledException) { return; }
            catch (Exception ex) { logger.LogWarning(ex, "Heartbeat for job {Job} failed", job.Id); }
        }
    }

    private async Task SettleAsync(Func<LikenessDb, Task<bool>> settle)
    {
        try
        {
            using var scope = scopes.CreateScope();
            await settle(scope.ServiceProvider.GetRequiredService<LikenessDb>());
        }
        catch (Exception ex) { logger.LogError(ex, "Settling a job on {Queue} failed; its lease will expire and it will run again", queue); }
    }

    private static async Task Delay(TimeSpan t, CancellationToken ct)
    {
        try { await Task.Delay(t, ct); } catch (OperationCanceledException) { }
    }
}
