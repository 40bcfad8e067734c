using System.Collections.Concurrent;

namespace Likeness.Core.Jobs;

/// <summary>
/// Wakes idle workers as soon as a job is committed: this process's workers directly, other processes' through
/// <see cref="Publish"/> (PostgreSQL NOTIFY where configured); workers also poll, so a lost signal only delays.
/// </summary>
public sealed class JobSignals
{
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _signals = new();

    /// <summary>Tells other processes that a queue has work; set by the cross-process notifier.</summary>
    public Action<string>? Publish { get; set; }

    private SemaphoreSlim For(string queue) => _signals.GetOrAdd(queue, _ => new SemaphoreSlim(0));

    public void Notify(string queue)
    {
        Wake(queue);
        Publish?.Invoke(queue);
    }

    /// <summary>Wakes this process's workers of a queue.</summary>
    public void Wake(string queue)
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
