using System.ComponentModel.DataAnnotations;

namespace Likeness.Core.Jobs;

public sealed class WorkerOptions
{
    public const string Section = "Likeness:Workers";

    /// <summary>Queues this process works on (empty: none; the API role runs no workers).</summary>
    public string[] Queues { get; set; } = [];

    /// <summary>How long a claim lasts without a heartbeat; a dead worker's job is taken over after it.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan Lease { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How often idle workers look for work that another process queued.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Jobs run at once per queue. Training and generation share the CPU/GPU, so one each by default.</summary>
    public Dictionary<string, int> Concurrency { get; set; } = new()
    {
        ["caption"] = 1, ["training"] = 1, ["generation"] = 1, ["webhook"] = 4,
    };

    /// <summary>Identifies this process in leases.</summary>
    public string WorkerId { get; set; } = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}";
}
