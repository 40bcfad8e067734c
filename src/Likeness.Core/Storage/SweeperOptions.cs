using System.ComponentModel.DataAnnotations;

namespace Likeness.Core.Storage;

/// <summary>The orphan sweeper's timing (section <c>Likeness:Sweeper</c>).</summary>
public sealed class SweeperOptions
{
    public const string Section = "Likeness:Sweeper";

    /// <summary>How often each process sweeps, after the sweep it makes at start.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "7.00:00:00")]
    public TimeSpan Interval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// How old an unreferenced blob (one no live request recorded) must be before it goes: longer than any upload's
    /// copy into the blob store takes, since another node may be copying photos whose LoRA it has not yet committed.
    /// Never zero: a staging folder is made a moment before its lock file, and the grace covers that moment too.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "30.00:00:00")]
    public TimeSpan Grace { get; set; } = TimeSpan.FromHours(1);
}
