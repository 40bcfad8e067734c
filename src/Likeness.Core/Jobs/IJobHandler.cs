using Likeness.Core.Data;

namespace Likeness.Core.Jobs;

/// <summary>Does the work of one queue. Handlers are resolved per job from a fresh DI scope.</summary>
public interface IJobHandler
{
    /// <summary>Runs the job. Throwing counts as a failed attempt (see <see cref="MaxAttempts"/>).</summary>
    Task<JobOutcome> HandleAsync(Job job, CancellationToken cancellationToken);

    /// <summary>Checked at every heartbeat: false cancels the running job (its subject was cancelled or archived).</summary>
    Task<bool> IsStillWantedAsync(Job job, CancellationToken cancellationToken) => Task.FromResult(true);

    /// <summary>Called once when the job will not be tried again, to fail its subject cleanly (state, refunds, webhook).</summary>
    Task GiveUpAsync(Job job, string error, CancellationToken cancellationToken);

    /// <summary>Attempts before giving up; a worker that dies mid-job also uses one.</summary>
    int MaxAttempts => 3;
}

public abstract record JobOutcome
{
    public static readonly JobOutcome Done = new DoneOutcome();
    public static JobOutcome RetryAt(DateTime when, string reason) => new RetryOutcome(when, reason);
    public static JobOutcome Failed(string reason) => new FailedOutcome(reason);
}

public sealed record DoneOutcome : JobOutcome;
/// <summary>Run again later without counting an attempt (a webhook's next scheduled delivery).</summary>
public sealed record RetryOutcome(DateTime When, string Reason) : JobOutcome;
/// <summary>Finished without success; the handler has already settled its subject.</summary>
public sealed record FailedOutcome(string Reason) : JobOutcome;
