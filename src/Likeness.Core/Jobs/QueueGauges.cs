using Likeness.Core.Common;
using Likeness.Core.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Likeness.Core.Jobs;

/// <summary>
/// Samples the job table for the queue depth and age gauges every <paramref name="interval"/>, in the background:
/// a scrape or an export reads the last sample instead of querying the database on its own thread. Nothing is
/// queried while no listener wants the gauges.
/// </summary>
public sealed class QueueGauges(IServiceScopeFactory scopes, LikenessMetrics metrics, TimeProvider clock,
    ILogger<QueueGauges> logger, TimeSpan interval) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await Task.Yield();
        using var timer = new PeriodicTimer(interval, clock);
        do
        {
            if (!metrics.QueueGaugesWanted) continue;
            try { metrics.SetQueues(await SampleAsync(stoppingToken)); }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { return; }
            catch (Exception ex) { logger.LogDebug(ex, "Sampling the job queues failed; the gauges keep the last sample"); }
        }
        while (await NextAsync(timer, stoppingToken));
    }

    /// <summary>Per queue: the jobs that could run now, and how long ago the oldest of them became runnable.</summary>
    public async Task<IReadOnlyList<QueueSample>> SampleAsync(CancellationToken ct)
    {
        using var scope = scopes.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<LikenessDb>();
        var now = clock.GetUtcNow().UtcDateTime;
        var samples = new List<QueueSample>(JobQueues.All.Length);
        foreach (var queue in JobQueues.All)
        {
            // Both read the (Queue, State, RunAfter) index.
            var waiting = db.Jobs.AsNoTracking().Where(j => j.Queue == queue && j.State == JobStates.Queued && j.RunAfter <= now);
            var depth = await waiting.CountAsync(ct);
            var oldest = depth == 0 ? (DateTime?)null : await waiting.OrderBy(j => j.RunAfter).Select(j => (DateTime?)j.RunAfter).FirstAsync(ct);
            samples.Add(new QueueSample(queue, depth, oldest is { } o ? now - o : TimeSpan.Zero));
        }
        return samples;
    }

    private static async Task<bool> NextAsync(PeriodicTimer timer, CancellationToken ct)
    {
        try { return await timer.WaitForNextTickAsync(ct); }
        catch (OperationCanceledException) { return false; }
    }
}
