using System.CommandLine;
using System.Text.Json;
using Likeness.Engine;
using Likeness.Engine.Captioning;
using Likeness.Engine.Flux;
using Likeness.Engine.Imaging;
using Likeness.Engine.Tools;
using Likeness.Engine.Training;
using Spectre.Console;

namespace Likeness.Cli;

/// <summary><c>likeness engine …</c>: the engine's own verbs (forward, bench, train, generate, and Florence-2's caption).</summary>
internal static class EngineCommand
{
    public static Command Create() => new("engine", "Run the engine directly: forward, autoencode, bench, train, generate, init, pretrain, scenes, caption.")
    {
        Forward(), Autoencode(), Bench(), Train(), Generate(), Init(), PretrainCommands.Pretrain(), PretrainCommands.Scenes(), Caption(),
    };

    private static Command Init()
    {
        var config = new Option<FileInfo>("--config") { Description = "Transformer config (reference FluxParams form).", Required = true };
        var output = new Option<string>("--output") { Description = "A .safetensors file (reference layout) or a folder (diffusers layout).", Required = true };
        var layout = new Option<string>("--layout") { Description = "reference or diffusers.", DefaultValueFactory = _ => "reference" };
        var dtype = new Option<string>("--dtype") { Description = "f32, f16 or bf16.", DefaultValueFactory = _ => "f32" };
        var shardMb = new Option<int>("--shard-mb") { Description = "Shard size for the diffusers layout.", DefaultValueFactory = _ => 500 };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 0 };
        var command = new Command("init", "Write a transformer checkpoint with seeded random weights (for tests and benchmarks).") { config, output, layout, dtype, shardMb, seed };
        command.SetAction(r =>
        {
            var type = r.GetValue(dtype) switch
            {
                "bf16" => TorchSharp.torch.ScalarType.BFloat16,
                "f16" => TorchSharp.torch.ScalarType.Float16,
                _ => TorchSharp.torch.ScalarType.Float32,
            };
            using var model = FluxModel.CreateInitialized(FluxParams.FromJson(File.ReadAllText(r.GetValue(config)!.FullName)), r.GetValue(seed));
            if (r.GetValue(layout) == "diffusers") DiffusersLayout.Save(model, r.GetValue(output)!, r.GetValue(shardMb) * 1024L * 1024, type);
            else Likeness.Engine.SafeTensors.SafeTensorsFile.Save(r.GetValue(output)!, model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.to_type(type)));
            return 0;
        });
        return command;
    }

    private static Command Forward()
    {
        var config = new Option<FileInfo?>("--config")
        {
            Description = "Transformer config: the reference FluxParams form (13 keys) or a diffusers config.json (default: the weights folder's config.json).",
        };
        var weights = new Option<FileInfo>("--weights")
        {
            Description = "A safetensors file, a folder of shards or its index json; reference keys (optionally under model.diffusion_model.) or diffusers keys.",
            Required = true,
        };
        var inputs = new Option<FileInfo>("--inputs") { Description = "safetensors with img, img_ids, txt, txt_ids, timesteps, y[, guidance].", Required = true };
        var output = new Option<FileInfo>("--output") { Description = "Where to write the F32 tensor 'out'.", Required = true };
        var lora = new Option<FileInfo?>("--lora") { Description = "An adapter to apply first: native, PEFT/diffusers or kohya (told apart by its keys)." };
        var strength = new Option<float>("--lora-strength") { DefaultValueFactory = _ => 1f };
        var command = new Command("forward", "One fp32 CPU forward of the transformer on given weights and inputs.") { config, weights, inputs, output, lora, strength };
        command.SetAction(r =>
        {
            ForwardRunner.Run(r.GetValue(config)?.FullName, r.GetValue(weights)!.FullName, r.GetValue(inputs)!.FullName, r.GetValue(output)!.FullName,
                r.GetValue(lora)?.FullName, r.GetValue(strength));
            return 0;
        });
        return command;
    }

    private static Command Autoencode()
    {
        var config = new Option<FileInfo>("--config")
        {
            Description = "Autoencoder config: the reference AutoEncoderParams form (9 keys) or a diffusers vae/config.json (AutoencoderKL).",
            Required = true,
        };
        var weights = new Option<FileInfo>("--weights") { Description = "A safetensors file (or a folder of shards) with reference keys encoder.* / decoder.*.", Required = true };
        var inputs = new Option<FileInfo>("--inputs") { Description = "safetensors with image [B,3,H,W] in [-1, 1] and/or latent [B,z,h,w].", Required = true };
        var output = new Option<FileInfo>("--output") { Description = "Where to write F32 latent = encode(image) and decoded = decode(latent, else the encoded one).", Required = true };
        var command = new Command("autoencode", "One fp32 CPU encode and/or decode of the autoencoder on given weights and inputs.") { config, weights, inputs, output };
        command.SetAction(r =>
        {
            AutoencodeRunner.Run(r.GetValue(config)!.FullName, r.GetValue(weights)!.FullName, r.GetValue(inputs)!.FullName, r.GetValue(output)!.FullName);
            return 0;
        });
        return command;
    }

    private static Command Bench()
    {
        var preset = new Option<string?>("--preset") { Description = "tiny, dev or schnell (the transformer's dimensions)." };
        var config = new Option<FileInfo?>("--config") { Description = "A transformer config instead of a preset." };
        var mode = new Option<string>("--mode") { Description = "forward, train-lora or train-full.", DefaultValueFactory = _ => "forward" };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 1 };
        var imgTokens = new Option<int>("--img-tokens") { DefaultValueFactory = _ => 256 };
        var txtTokens = new Option<int>("--txt-tokens") { DefaultValueFactory = _ => 128 };
        var threads = new Option<int>("--threads") { DefaultValueFactory = _ => Environment.ProcessorCount };
        var checkpointing = new Option<bool>("--checkpointing") { Description = "Gradient checkpointing in the training modes (recompute each block in the backward)." };
        var command = new Command("bench", "Time the transformer and report its FLOP/s against a 4096² matmul, as one JSON object.")
        {
            preset, config, mode, batch, imgTokens, txtTokens, threads, checkpointing,
        };
        command.SetAction(r =>
        {
            var p = r.GetValue(config) is { } file ? FluxParams.FromJson(File.ReadAllText(file.FullName))
                : FluxPreset.ByName(r.GetValue(preset) ?? "tiny").Transformer;
            var result = BenchRunner.Run(p, r.GetValue(mode)!, r.GetValue(batch), r.GetValue(imgTokens), r.GetValue(txtTokens), r.GetValue(threads),
                checkpointing: r.GetValue(checkpointing));
            Console.WriteLine(JsonSerializer.Serialize(result));
            return 0;
        });
        return command;
    }

    private static Command Train()
    {
        var dataset = new Option<FileInfo>("--dataset") { Description = "Dataset zip (manifest.json + NNN.jpg + NNN.txt).", Required = true };
        var output = new Option<FileInfo>("--output") { Description = "Where to write the adapter (safetensors).", Required = true };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 1000 };
        var rank = new Option<int>("--rank") { DefaultValueFactory = _ => 16 };
        var work = new Option<DirectoryInfo?>("--work") { Description = "Cache and checkpoint folder (resumes when it has a checkpoint)." };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 0 };
        var preset = new Option<string>("--preset") { DefaultValueFactory = _ => "flux-tiny" };
        var command = new Command("train", "Train a LoRA from a dataset zip, with a progress bar.") { dataset, output, steps, rank, work, seed, preset };
        command.SetAction((r, ct) =>
        {
            using var engine = new FluxEngine(FluxPreset.ByName(r.GetValue(preset)!), r.GetValue(CommonOptions.Models),
                FluxEngine.DeviceFor(r.GetValue(CommonOptions.EngineDevice)), r.GetValue(CommonOptions.EnginePrecision));
            var workDir = r.GetValue(work)?.FullName ?? Path.Combine(Path.GetTempPath(), "likeness-train-" + Path.GetFileNameWithoutExtension(r.GetValue(output)!.Name));
            var options = new LoraTrainingOptions(r.GetValue(dataset)!.FullName, r.GetValue(output)!.FullName, workDir,
                r.GetValue(steps), r.GetValue(rank), r.GetValue(seed));
            LoraTrainingResult? result = null;
            AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("training", maxValue: options.Steps);
                    result = engine.Train(options, new Progress(p =>
                    {
                        task.Value = p.Step;
                        task.Description = $"step {p.Step}/{p.TotalSteps} · loss {p.Loss:F4} · {task.Speed ?? 0:F1} it/s";
                    }), ct);
                });
            Console.WriteLine($"adapter: {result!.AdapterPath} ({result.Steps} steps, loss {result.FinalLoss:F4})");
            return Task.FromResult(0);
        });
        return command;
    }

    private static Command Generate()
    {
        var lora = new Option<FileInfo?>("--lora") { Description = "Adapter to apply (native safetensors)." };
        var prompt = new Option<string>("--prompt") { Required = true };
        var output = new Option<FileInfo>("--output") { Description = "Image file; .png, .jpg or .webp.", Required = true };
        var width = new Option<int?>("--width");
        var height = new Option<int?>("--height");
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 28 };
        var seed = new Option<long>("--seed") { DefaultValueFactory = _ => 0 };
        var guidance = new Option<float>("--guidance") { DefaultValueFactory = _ => 3.5f };
        var strength = new Option<float>("--strength") { DefaultValueFactory = _ => 1f };
        var preset = new Option<string>("--preset") { DefaultValueFactory = _ => "flux-tiny" };
        var command = new Command("generate", "Generate one image.") { lora, prompt, output, width, height, steps, seed, guidance, strength, preset };
        command.SetAction((r, ct) =>
        {
            var p = FluxPreset.ByName(r.GetValue(preset)!);
            using var engine = new FluxEngine(p, r.GetValue(CommonOptions.Models),
                FluxEngine.DeviceFor(r.GetValue(CommonOptions.EngineDevice)), r.GetValue(CommonOptions.EnginePrecision));
            var path = r.GetValue(output)!.FullName;
            var format = Path.GetExtension(path).ToLowerInvariant() switch
            {
                ".jpg" or ".jpeg" => EncodedImageFormat.Jpeg,
                ".webp" => EncodedImageFormat.Webp,
                _ => EncodedImageFormat.Png,
            };
            var bytes = AnsiConsole.Status().Start("generating", _ => engine.Generate(new GenerateOptions(r.GetValue(lora)?.FullName, r.GetValue(prompt)!,
                r.GetValue(width) ?? p.BaseResolution, r.GetValue(height) ?? p.BaseResolution, r.GetValue(seed), r.GetValue(strength),
                r.GetValue(guidance), r.GetValue(steps), format), ct));
            File.WriteAllBytes(path, bytes);
            Console.WriteLine($"image: {path} ({bytes.Length} bytes)");
            return Task.FromResult(0);
        });
        return command;
    }

    /// <summary>Florence-2 on photos from the command line: the caption a worker would get, and the CPU time per photo.</summary>
    private static Command Caption()
    {
        var photos = new Argument<FileInfo[]>("photos") { Description = "jpg, png or webp files.", Arity = ArgumentArity.OneOrMore };
        var task = new Option<string>("--task") { Description = "<CAPTION>, <DETAILED_CAPTION> or <MORE_DETAILED_CAPTION>.", DefaultValueFactory = _ => Florence2Tasks.MoreDetailedCaption };
        var threads = new Option<int>("--threads") { Description = "CPU threads (default: one per core).", DefaultValueFactory = _ => Environment.ProcessorCount };
        var command = new Command("caption", "Caption photos with Florence-2 from --captioner-models (or LIKENESS_CAPTIONER_MODELS), with the time each took.") { photos, task, threads };
        command.SetAction(r =>
        {
            var folder = r.GetValue(CommonOptions.CaptionerModels) ?? Environment.GetEnvironmentVariable(Hosting.Setting.CaptionerModels.Environment);
            if (string.IsNullOrWhiteSpace(folder))
            {
                Console.Error.WriteLine("likeness: engine caption needs --captioner-models DIR, a Florence-2 model folder.");
                return 2;
            }
            EngineThreads.Apply(TorchSharp.torch.CPU, r.GetValue(threads));
            var watch = System.Diagnostics.Stopwatch.StartNew();
            using var captioning = Florence2Captioning.Load(folder);
            Console.WriteLine($"loaded {folder} in {watch.Elapsed.TotalSeconds:F1} s");
            foreach (var photo in r.GetValue(photos)!)
            {
                watch.Restart();
                var caption = captioning.Caption(File.ReadAllBytes(photo.FullName), r.GetValue(task)!);
                Console.WriteLine($"{photo.Name} ({watch.Elapsed.TotalSeconds:F2} s): {caption}");
            }
            return 0;
        });
        return command;
    }

    private sealed class Progress(Action<LoraTrainingProgress> report) : IProgress<LoraTrainingProgress>
    {
        public void Report(LoraTrainingProgress value) => report(value);
    }
}
