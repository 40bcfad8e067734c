using System.Diagnostics;
using Likeness.Core.Blobs;
using Likeness.Core.Common;
using Likeness.Core.Data;
using Likeness.Core.Jobs;
using Likeness.Core.Loras;
using Likeness.Core.Ports;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Likeness.Core.Pipeline;

/// <summary>
/// Charges the training fee, trains with progress written to the database, stores the adapter and marks READY.
/// Checkpoints stay in the work folder, so a worker that takes over after a crash resumes instead of starting over.
/// </summary>
public sealed class TrainingJobHandler(LikenessDb db, LoraLifecycle lifecycle, IBlobStore blobs, ITrainer trainer,
    LoraFiles files, IServiceScopeFactory scopes, PipelineOptions options, LikenessMetrics metrics, ILogger<TrainingJobHandler> logger) : IJobHandler
{
    public async Task<JobOutcome> HandleAsync(Job job, CancellationToken ct)
    {
        var loraId = job.SubjectId;
        if (!await lifecycle.BeginTrainingAsync(loraId, ct)) return JobOutcome.Done;
        var lora = await db.Loras.AsNoTracking().SingleAsync(l => l.Id == loraId, ct);

        var work = options.LoraWorkFolder(loraId);
        var zip = await BlobFiles.DownloadAsync(blobs, BlobKeys.Dataset(loraId), Path.Combine(work, "dataset.zip"), ct);
        var adapter = Path.Combine(work, "adapter.safetensors");
        await using var reporter = new ProgressWriter(scopes, loraId, options.ProgressInterval, new StepTimer(metrics, lora.BaseModel));

        TrainingResult result;
        try
        {
            result = await trainer.TrainAsync(
                new TrainingRequest(zip, adapter, Path.Combine(work, "train"), lora.TriggerWord, lora.Steps, lora.LoraRank,
                    Seed: SeedOf(loraId), CheckpointEvery: options.CheckpointEvery),
                reporter, ct);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Cancelled or failed elsewhere while training: the checkpoints written since its work folder was removed go too.
            // (A shutdown leaves them, for the worker that resumes.)
            if (!await IsStillWantedAsync(job, CancellationToken.None)) await files.DiscardDatasetAsync(loraId, CancellationToken.None);
            throw;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // A trainer error is a property of this dataset and settings, not of the machine: trying again would fail again.
            logger.LogWarning(ex, "Training {Lora} failed", loraId);
            await lifecycle.FailAsync(loraId, "training_failed", "Training failed: " + ex.Message, CancellationToken.None);
            return JobOutcome.Failed(ex.Message);
        }
        await BlobFiles.UploadAsync(blobs, BlobKeys.Adapter(loraId), result.AdapterPath, ct);
        if (await lifecycle.CompleteAsync(loraId, ct))
        {
            try { Directory.Delete(work, recursive: true); }
            catch (IOException ex) { logger.LogWarning(ex, "Could not remove the work folder {Folder}", work); }
        }
        return JobOutcome.Done;
    }

    public async Task<bool> IsStillWantedAsync(Job job, CancellationToken ct) =>
        await db.Loras.AsNoTracking().AnyAsync(l => l.Id == job.SubjectId && LoraStatus.Active.Contains(l.Status), ct);

    public Task GiveUpAsync(Job job, string error, CancellationToken ct) =>
        lifecycle.FailAsync(job.SubjectId, "training_failed", "Training was interrupted too many times: " + error, ct);

    /// <summary>The training seed comes from the id, so a resumed run makes the same choices as the first.</summary>
    private static long SeedOf(string loraId)
    {
        var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(loraId));
        return BitConverter.ToInt64(hash, 0) & long.MaxValue;
    }

    /// <summary>
    /// Times training steps from the trainer's progress reports: the time between two reports over the steps between
    /// them. The first report only starts the clock, since it also covers loading the models and caching the dataset.
    /// </summary>
    private sealed class StepTimer(LikenessMetrics metrics, string baseModel)
    {
        private int? _lastStep;
        private long _lastAt;

        public void Report(TrainingProgress p)
        {
            var now = Stopwatch.GetTimestamp();
            if (_lastStep is { } last && p.Step > last)
            {
                var perStep = Stopwatch.GetElapsedTime(_lastAt, now) / (p.Step - last);
                for (var i = last; i < p.Step; i++) metrics.TrainingStep(perStep, baseModel);
            }
            _lastStep = p.Step;
            _lastAt = now;
        }
    }

    /// <summary>Keeps the latest progress and writes it at most once per interval, from its own DI scope.</summary>
    private sealed class ProgressWriter : IProgress<TrainingProgress>, IAsyncDisposable
    {
        private readonly IServiceScopeFactory _scopes;
        private readonly string _loraId;
        private readonly StepTimer _steps;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _loop;
        private TrainingProgress? _latest;
        private TrainingProgress? _written;

        public ProgressWriter(IServiceScopeFactory scopes, string loraId, TimeSpan interval, StepTimer steps)
        {
            _scopes = scopes;
            _loraId = loraId;
            _steps = steps;
            _loop = Task.Run(async () =>
            {
                LikenessTelemetry.Detach();
                while (!_stop.IsCancellationRequested)
                {
                    try { await Task.Delay(interval, _stop.Token); } catch (OperationCanceledException) { }
                    await FlushAsync();
                }
            });
        }

        /// <summary>Called on the trainer's thread after every step: keeps the value, times the step, writes nothing.</summary>
        public void Report(TrainingProgress value)
        {
            _steps.Report(value);
            Volatile.Write(ref _latest, value);
        }

        private async Task FlushAsync()
        {
            var p = Volatile.Read(ref _latest);
            if (p is null || ReferenceEquals(p, _written)) return;
            try
            {
                using var scope = _scopes.CreateScope();
                var lifecycle = scope.ServiceProvider.GetRequiredService<LoraLifecycle>();
                await lifecycle.ReportProgressAsync(_loraId, p.Step, p.TotalSteps,
                    p.Eta is { } eta ? (int)Math.Ceiling(eta.TotalSeconds) : null,
                    double.IsFinite(p.Loss) ? p.Loss : null, CancellationToken.None);
                _written = p;
            }
            catch (Exception) { /* progress is advisory; the next flush tries again */ }
        }

        public async ValueTask DisposeAsync()
        {
            if (_stop.IsCancellationRequested) return;
            await _stop.CancelAsync();
            await _loop;
            _stop.Dispose();
        }
    }
}
