using System.CommandLine;
using Likeness.Engine;
using Likeness.Engine.Pretraining;
using Spectre.Console;

namespace Likeness.Cli;

/// <summary>
/// <c>likeness engine pretrain</c> and <c>likeness engine scenes</c>: flux-tiny's own weights, learned from scenes
/// composed of the Fluent Emoji 3D renders (fetched by <c>build/fetch-emoji.sh</c>).
/// </summary>
internal static class PretrainCommands
{
    private static Option<DirectoryInfo> EmojiOption() => new("--emoji")
    {
        Description = "The emoji set: assets/*.webp and emoji.json, as build/fetch-emoji.sh lays them out.",
        DefaultValueFactory = _ => new DirectoryInfo("data/emoji"),
    };

    public static Command Scenes()
    {
        var emoji = EmojiOption();
        var output = new Option<DirectoryInfo>("--output") { Description = "Folder for NNN.png + NNN.txt.", Required = true };
        var count = new Option<int>("--count") { DefaultValueFactory = _ => 16 };
        var size = new Option<int>("--size") { DefaultValueFactory = _ => FluxPreset.Tiny.BaseResolution };
        var heldOut = new Option<bool>("--held-out") { Description = "Compose from the held-out objects only." };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 0 };
        var command = new Command("scenes", "Write composed scenes and their captions, as pretraining sees them.") { emoji, output, count, size, heldOut, seed };
        command.SetAction(r =>
        {
            var catalog = EmojiCatalog.Load(r.GetValue(emoji)!.FullName);
            var composer = new SceneComposer(r.GetValue(heldOut) ? catalog.HeldOut : catalog.Training, r.GetValue(size));
            var folder = r.GetValue(output)!.FullName;
            Directory.CreateDirectory(folder);
            var random = new Random((int)r.GetValue(seed));
            for (var i = 0; i < r.GetValue(count); i++)
            {
                using var scene = composer.Compose(random);
                using var data = scene.Image.Encode(SkiaSharp.SKEncodedImageFormat.Png, 100);
                File.WriteAllBytes(Path.Combine(folder, $"{i:D3}.png"), data.ToArray());
                File.WriteAllText(Path.Combine(folder, $"{i:D3}.txt"), scene.Caption);
            }
            Console.WriteLine($"{r.GetValue(count)} scenes in {folder} ({catalog.Training.Count} training and {catalog.HeldOut.Count} held-out renders)");
            return 0;
        });
        return command;
    }

    public static Command Pretrain()
    {
        var emoji = EmojiOption();
        var work = new Option<DirectoryInfo>("--work") { Description = "Checkpoints, caches and loss logs; a rerun resumes from here.", Required = true };
        var output = new Option<DirectoryInfo>("--output") { Description = "Where the finished weights go (a flux-tiny weights folder).", Required = true };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 1 };
        var aeSteps = new Option<int>("--ae-steps") { DefaultValueFactory = _ => 2000 };
        var aeBatch = new Option<int>("--ae-batch") { DefaultValueFactory = _ => 16 };
        var fluxSteps = new Option<int>("--flux-steps") { DefaultValueFactory = _ => 3000 };
        var fluxBatch = new Option<int>("--flux-batch") { DefaultValueFactory = _ => 48 };
        var stopAt = new Option<int?>("--flux-stop-at") { Description = "Stop the transformer phase after this step (a checkpoint; the schedule still runs to --flux-steps, and a rerun continues)." };
        var uniformT = new Option<double>("--flux-uniform-t") { Description = "Share of transformer samples with t uniform in [0, 1] (else sigmoid(N(0, 1))).", DefaultValueFactory = _ => 0.5 };
        var scenes = new Option<int>("--scenes") { Description = "Scenes composed and encoded once for the transformer phase.", DefaultValueFactory = _ => 20_000 };
        var phase = new Option<string>("--phase") { Description = "all, autoencoder (stop after it) or transformer.", DefaultValueFactory = _ => "all" };
        var threads = new Option<int>("--threads") { DefaultValueFactory = _ => Environment.ProcessorCount };
        var plot = new Option<FileInfo?>("--plot") { Description = "Where to draw the loss curves (PNG; default <work>/curves.png)." };
        var command = new Command("pretrain", "Pretrain flux-tiny (autoencoder, then transformer with its text encoders) on composed emoji scenes.")
        {
            emoji, work, output, seed, aeSteps, aeBatch, fluxSteps, fluxBatch, stopAt, uniformT, scenes, phase, threads, plot,
        };
        command.SetAction((r, ct) =>
        {
            Likeness.Engine.EngineThreads.Apply(TorchSharp.torch.CPU, r.GetValue(threads));
            var catalog = EmojiCatalog.Load(r.GetValue(emoji)!.FullName);
            var pretrainer = new FluxTinyPretrainer(catalog, r.GetValue(work)!.FullName, r.GetValue(seed), FluxPreset.TinyRandom);
            var options = new FluxTinyPretrainOptions(
                new AutoencoderPretrainOptions(Steps: r.GetValue(aeSteps), Batch: r.GetValue(aeBatch)),
                new TransformerPretrainOptions(Steps: r.GetValue(fluxSteps), Batch: r.GetValue(fluxBatch), Scenes: r.GetValue(scenes),
                    UniformTimeShare: r.GetValue(uniformT), StopAt: r.GetValue(stopAt)),
                r.GetValue(phase)!);
            Console.WriteLine($"{catalog.Training.Count} training renders, {catalog.HeldOut.Count} held out; work folder {r.GetValue(work)!.FullName}");
            FluxTinyPretrainReport? report = null;
            AnsiConsole.Progress()
                .AutoClear(false)
                .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                    new ElapsedTimeColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var tasks = new Dictionary<string, ProgressTask>();
                    report = pretrainer.Run(options, r.GetValue(output)!.FullName, new Progress(p =>
                    {
                        if (!tasks.TryGetValue(p.Phase, out var task)) tasks[p.Phase] = task = ctx.AddTask(p.Phase, maxValue: p.TotalSteps);
                        task.Value = p.Step;
                        task.Description = $"{p.Phase,-11} step {p.Step}/{p.TotalSteps}  loss {p.Loss:F4}  {p.StepsPerSecond:F2} it/s";
                    }), ct);
                });
            var curves = r.GetValue(plot)?.FullName ?? Path.Combine(r.GetValue(work)!.FullName, "curves.png");
            LossCurves.Write(r.GetValue(work)!.FullName, curves);
            Console.WriteLine(report!.ToString());
            Console.WriteLine($"loss curves: {curves}");
            return Task.FromResult(0);
        });
        return command;
    }

    private sealed class Progress(Action<PretrainProgress> report) : IProgress<PretrainProgress>
    {
        public void Report(PretrainProgress value) => report(value);
    }
}
