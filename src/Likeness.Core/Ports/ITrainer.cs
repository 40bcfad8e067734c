namespace Likeness.Core.Ports;

/// <summary>Trains a LoRA adapter from a packaged dataset (the dataset zip is the contract, see DESIGN.md).</summary>
public interface ITrainer
{
    /// <summary>
    /// Trains until <see cref="TrainingRequest.Steps"/> and writes the adapter (safetensors) to
    /// <see cref="TrainingRequest.AdapterPath"/>. Checkpoints go under <see cref="TrainingRequest.WorkDirectory"/>;
    /// a call with the same work directory after a crash resumes from the last checkpoint.
    /// Throws <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> fires.
    /// </summary>
    Task<TrainingResult> TrainAsync(TrainingRequest request, IProgress<TrainingProgress> progress, CancellationToken cancellationToken);
}

/// <param name="DatasetZipPath">The dataset zip: manifest.json + NNN.jpg + NNN.txt.</param>
/// <param name="AdapterPath">Where the finished adapter is written.</param>
/// <param name="WorkDirectory">Private scratch folder for caches and checkpoints; survives restarts.</param>
/// <param name="Seed">Seeds every random choice of the run, so a resumed run equals an uninterrupted one.</param>
/// <param name="CheckpointEvery">Steps between checkpoints.</param>
public sealed record TrainingRequest(
    string DatasetZipPath,
    string AdapterPath,
    string WorkDirectory,
    string TriggerWord,
    int Steps,
    int Rank,
    long Seed,
    int CheckpointEvery = 100);

public sealed record TrainingProgress(int Step, int TotalSteps, double Loss, TimeSpan? Eta);

public sealed record TrainingResult(string AdapterPath, int Steps, double FinalLoss);
