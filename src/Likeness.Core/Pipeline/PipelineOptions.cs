namespace Likeness.Core.Pipeline;

public sealed class PipelineOptions
{
    /// <summary>Local scratch space: downloaded datasets, training checkpoints, cached adapters.</summary>
    public required string WorkFolder { get; set; }
    /// <summary>One LoRA's scratch: its dataset zip while it is made and trained, the training checkpoints.</summary>
    public string LoraWorkFolder(string loraId) => Path.Combine(WorkFolder, loraId);
    /// <summary>Where generation workers keep adapters at hand.</summary>
    public string AdapterCacheFolder => Path.Combine(WorkFolder, "adapters");
    /// <summary>The adapter a generation worker keeps at hand for a LoRA.</summary>
    public string CachedAdapter(string loraId) => Path.Combine(AdapterCacheFolder, loraId + ".safetensors");
    /// <summary>Where the API stages uploads (one locked folder each) before they are accepted; null where none are taken.</summary>
    public string? StagingFolder { get; set; }
    public int CheckpointEvery { get; set; } = 100;
    /// <summary>How often training progress is written to the database.</summary>
    public TimeSpan ProgressInterval { get; set; } = TimeSpan.FromSeconds(1);
}
