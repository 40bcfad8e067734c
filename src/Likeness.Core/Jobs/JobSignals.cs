using System.Collections.Concurrent;

namespace Likeness.Core.Jobs;

/// <summary>Wakes this process's idle workers right after a job is committed; other processes poll.</summary>
public sealed class JobSignals
{
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _signals = new();

    private SemaphoreSlim For(string queue) => _signals.GetOrAdd(queue, _ => new SemaphoreSlim(0));

    public void Notify(string queue)
    {
        var s = For(queue);
        if (s.CurrentCount == 0) s.Release();
    }

    public async Task WaitAsync(string queue, TimeSpan timeout, CancellationToken ct)
    {
        try { await For(queue).WaitAsync(timeout, ct); }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
    }
}
