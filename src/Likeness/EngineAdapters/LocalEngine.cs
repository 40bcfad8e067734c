using Likeness.Core.Ports;
using Likeness.Engine;
using Likeness.Engine.Imaging;
using Likeness.Engine.Training;

namespace Likeness.EngineAdapters;

/// <summary>The service's training and generation ports over the in-process FLUX engine.</summary>
public static class LocalEngine
{
    public static IServiceCollection AddLocalEngine(this IServiceCollection services, string preset, string? modelsFolder, int? threads = null,
        string? precision = null, string? device = null)
    {
        services.AddSingleton(_ => new FluxEngine(FluxPreset.ByName(preset), modelsFolder, FluxEngine.DeviceFor(device), precision, threads));
        services.AddSingleton<ITrainer, LocalTrainer>();
        services.AddSingleton<IImageGenerator, LocalImageGenerator>();
        return services;
    }
}

public sealed class LocalTrainer(FluxEngine engine) : ITrainer
{
    public Task<TrainingResult> TrainAsync(TrainingRequest request, IProgress<TrainingProgress> progress, CancellationToken cancellationToken) =>
        // Training holds a thread for minutes: give it its own instead of a pool thread.
        Task.Factory.StartNew(() =>
        {
            var result = engine.Train(
                new LoraTrainingOptions(request.DatasetZipPath, request.AdapterPath, request.WorkDirectory, request.Steps, request.Rank,
                    request.Seed, request.CheckpointEvery),
                new Relay(progress), cancellationToken);
            return new TrainingResult(result.AdapterPath, result.Steps, result.FinalLoss);
        }, cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private sealed class Relay(IProgress<TrainingProgress> target) : IProgress<LoraTrainingProgress>
    {
        public void Report(LoraTrainingProgress p) => target.Report(new TrainingProgress(p.Step, p.TotalSteps, p.Loss, p.Eta));
    }
}

public sealed class LocalImageGenerator(FluxEngine engine) : IImageGenerator
{
    public string BaseModel => engine.Preset.Name;
    public int BaseResolution => engine.Preset.BaseResolution;

    public Task<GeneratedImage> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken) =>
        Task.Factory.StartNew(() =>
        {
            var (format, contentType) = request.Format switch
            {
                ImageFormat.Jpeg => (EncodedImageFormat.Jpeg, "image/jpeg"),
                ImageFormat.Webp => (EncodedImageFormat.Webp, "image/webp"),
                _ => (EncodedImageFormat.Png, "image/png"),
            };
            var bytes = engine.Generate(new GenerateOptions(request.AdapterPath, request.Prompt, request.Width, request.Height, request.Seed,
                request.LoraStrength, request.GuidanceScale, request.Steps, format), cancellationToken);
            return new GeneratedImage(bytes, request.Width, request.Height, contentType);
        }, cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);
}
