namespace Likeness.Core.Pipeline;

public sealed class PipelineOptions
{
    /// <summary>Local scratch space: downloaded datasets, training checkpoints, cached adapters.</summary>
    public required string WorkFolder { get; set; }
    public int CheckpointEvery { get; set; } = 100;
    /// <summary>How often training progress is written to the database.</summary>
    public TimeSpan ProgressInterval { get; set; } = TimeSpan.FromSeconds(1);
}
