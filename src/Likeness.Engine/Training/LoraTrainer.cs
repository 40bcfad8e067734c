using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Likeness.Engine.Imaging;
using Likeness.Engine.Lora;
using Likeness.Engine.Sampling;
using Likeness.Engine.SafeTensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Likeness.Engine.Scalars;

namespace Likeness.Engine.Training;

public sealed record LoraTrainingOptions(
    string DatasetZip,
    string AdapterPath,
    string WorkDirectory,
    int Steps,
    int Rank,
    long Seed,
    int CheckpointEvery = 100,
    double? LearningRate = null,
    double CaptionDropout = 0.05,
    double GradClip = 1.0,
    double WeightDecay = 0.0,
    float TrainingGuidance = 1.0f,
    bool? GradientCheckpointing = null);

public sealed record LoraTrainingProgress(int Step, int TotalSteps, double Loss, TimeSpan? Eta);

public sealed record LoraTrainingResult(string AdapterPath, int Steps, double FinalLoss);

/// <summary>
/// Flow-matching LoRA training: latents and text embeddings cached once per dataset, then per step
/// x_t = (1 − t)·x0 + t·ε with t = sigmoid(N(0, 1)), target ε − x0, MSE; AdamW on the adapter only (one flat
/// buffer), its learning rate falling from the peak to a tenth along a cosine over the run (with a constant rate the
/// last steps of a batch-of-one run leave the adapter wherever their noise took it: on flux-tiny the subjects were
/// attributed 36–38 of 48 times, with the decay 48 and 43 of 48, bench/README.md), gradient clipping, caption dropout,
/// aspect-ratio buckets. Every step's randomness comes from (seed, step), and a
/// checkpoint holds the adapter and the optimizer, so a resumed run continues exactly where the first stopped.
/// </summary>
public sealed class LoraTrainer(FluxModels models)
{
    /// <summary>How many recent steps the remaining time is estimated from.</summary>
    private const int RecentSteps = 20;

    private sealed record CachedItem(Tensor Latents, Tensor Txt, Tensor Vec);

    public LoraTrainingResult Train(LoraTrainingOptions o, IProgress<LoraTrainingProgress>? progress, CancellationToken ct)
    {
        Directory.CreateDirectory(o.WorkDirectory);
        var manifest = DatasetReader.Read(o.DatasetZip);
        var device = models.Device;
        var transformer = models.Transformer;
        foreach (var p in transformer.parameters()) p.requires_grad = false;

        var cache = LoadOrBuildCache(manifest, Path.Combine(o.WorkDirectory, "cache.safetensors"));
        // With the captions cached, the text encoders (T5-XXL alone ≈ 9.5 GB in bf16) have nothing to do until the
        // training ends: on a GPU they wait in host memory and come back for generation.
        var offload = device.type != DeviceType.CPU;
        if (offload) models.Text.MoveTo(CPU);
        try
        {
            using var adapter = LoraAdapter.Create(transformer, o.Rank, seed: o.Seed);
            using var optimizer = new AdamW(adapter.Flat!, lr: o.LearningRate ?? models.Preset.LearningRate, weightDecay: o.WeightDecay);
            var checkpoint = new Checkpoint(Path.Combine(o.WorkDirectory, "checkpoint"));
            var (start, lossEma) = checkpoint.TryRestore(adapter, optimizer);

            // Full-size presets recompute each block in the backward instead of keeping its activations (tens of GB
            // at 1024²); flux-tiny's are small enough to keep.
            transformer.GradientCheckpointing = o.GradientCheckpointing ?? !models.Preset.IsTiny;
            transformer.train();
            using var trainingGuidance = o.TrainingGuidance.ToScalar();
            // Position ids depend only on the latent's shape (one per aspect bucket) and the text length: made once.
            using var txtIds = FluxSampling.TextIds(1, cache.Empty.Txt.shape[1], device);
            var imgIds = cache.Items.Select(i => (i.Latents.shape[2], i.Latents.shape[3])).Distinct()
                .ToDictionary(s => s, s => FluxSampling.ImageIds(1, s.Item1, s.Item2, device));
            var watch = Stopwatch.StartNew();
            // The ETA follows the last steps' pace, not the run's average (the first step also pays for warm-up).
            var recent = new Queue<TimeSpan>([TimeSpan.Zero]);
            var lastLoss = double.NaN;
            var peak = o.LearningRate ?? models.Preset.LearningRate;
            for (var step = start; step < o.Steps; step++)
            {
                ct.ThrowIfCancellationRequested();
                optimizer.LearningRate = LearningRateSchedule.WarmupCosine(peak, step, o.Steps, warmup: 0);
                using (var scope = NewDisposeScope())
                {
                    using var generator = new Generator((ulong)unchecked(o.Seed * 1_000_003 + step), torch.device("cpu"));
                    var index = (int)randint(0, cache.Items.Count, [1], generator: generator).item<long>();
                    var dropCaption = rand([1], generator: generator).item<float>() < o.CaptionDropout;
                    var t = sigmoid(randn([1], generator: generator));
                    var item = cache.Items[index];
                    var x0 = item.Latents.to(device);
                    var noise = randn(x0.shape, generator: generator).to(device);
                    var tDev = t.to(device);
                    var tView = tDev.view(-1, 1, 1, 1);
                    var xt = (tView.negative().add(One, One) * x0).add(tView * noise, One); // (1 − t)·x0 + t·ε
                    var target = noise - x0;

                    var txt = (dropCaption ? cache.Empty.Txt : item.Txt).to(device);
                    var vec = (dropCaption ? cache.Empty.Vec : item.Vec).to(device);
                    using var guidance = full([1], trainingGuidance, ScalarType.Float32, device);
                    var pred = transformer.forward(FluxSampling.Pack(xt), imgIds[(x0.shape[2], x0.shape[3])], txt, txtIds, tDev, vec, transformer.Params.GuidanceEmbed ? guidance : null);
                    var loss = nn.functional.mse_loss(pred.to_type(ScalarType.Float32), FluxSampling.Pack(target)); // fp32 loss over bf16 weights
                    optimizer.ZeroGrad();
                    loss.backward();
                    optimizer.ClipGradNorm(o.GradClip);
                    optimizer.Step();
                    lastLoss = loss.item<float>();
                }
                lossEma = double.IsNaN(lossEma) ? lastLoss : 0.9 * lossEma + 0.1 * lastLoss;
                var done = step + 1;
                recent.Enqueue(watch.Elapsed);
                if (recent.Count > RecentSteps + 1) recent.Dequeue();
                var perStep = (recent.Last() - recent.Peek()) / (recent.Count - 1);
                progress?.Report(new LoraTrainingProgress(done, o.Steps, lossEma, perStep * (o.Steps - done)));
                if (done % o.CheckpointEvery == 0 && done < o.Steps) checkpoint.Save(done, lossEma, adapter, optimizer);
            }
            foreach (var ids in imgIds.Values) ids.Dispose();
            transformer.eval();

            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(o.AdapterPath))!);
            adapter.Save(o.AdapterPath, new Dictionary<string, string>
            {
                ["trigger_word"] = manifest.TriggerWord,
                ["base_model"] = models.Preset.Name,
                ["steps"] = o.Steps.ToString(CultureInfo.InvariantCulture),
                ["final_loss"] = lossEma.ToString("G6", CultureInfo.InvariantCulture),
            });
            return new LoraTrainingResult(o.AdapterPath, o.Steps, lossEma);
        }
        finally
        {
            if (offload) models.Text.MoveTo(device);
            transformer.GradientCheckpointing = false;
            transformer.eval();
            cache.Dispose();
        }
    }

    private sealed class Cache(List<CachedItem> items, CachedItem empty) : IDisposable
    {
        public List<CachedItem> Items { get; } = items;
        public CachedItem Empty { get; } = empty;

        public void Dispose()
        {
            foreach (var i in Items.Append(Empty)) { i.Latents.Dispose(); i.Txt.Dispose(); i.Vec.Dispose(); }
        }
    }

    /// <summary>Latents (each image at its bucket size) and text embeddings, computed once and kept in the work folder.</summary>
    private Cache LoadOrBuildCache(DatasetReader.Manifest manifest, string path)
    {
        if (File.Exists(path))
        {
            using var reader = SafeTensorsFile.Open(path);
            if (reader.Metadata.TryGetValue("items", out var n) && int.Parse(n, CultureInfo.InvariantCulture) == manifest.Items.Count)
            {
                var loaded = Enumerable.Range(0, manifest.Items.Count)
                    .Select(i => new CachedItem(reader.Read($"{i}.latents"), reader.Read($"{i}.txt"), reader.Read($"{i}.vec"))).ToList();
                return new Cache(loaded, new CachedItem(empty(0), reader.Read("empty.txt"), reader.Read("empty.vec")));
            }
        }

        using var noGrad = no_grad();
        var items = new List<CachedItem>();
        foreach (var entry in manifest.Items)
        {
            var (w, h) = DatasetReader.Bucket(entry.Width, entry.Height, models.Preset.BaseResolution);
            using var pixels = ImageTensors.FromEncoded(entry.Bytes, w, h);
            using var batch = pixels.unsqueeze(0).to(models.Device);
            var latents = models.Autoencoder.Encode(batch).cpu();
            var (txt, vec) = models.Text.Encode([entry.Caption]);
            items.Add(new CachedItem(latents, txt.cpu(), vec.cpu()));
        }
        var (emptyTxt, emptyVec) = models.Text.Encode([""]);
        var emptyItem = new CachedItem(empty(0), emptyTxt.cpu(), emptyVec.cpu());

        var tensors = new Dictionary<string, Tensor> { ["empty.txt"] = emptyItem.Txt, ["empty.vec"] = emptyItem.Vec };
        for (var i = 0; i < items.Count; i++)
        {
            tensors[$"{i}.latents"] = items[i].Latents;
            tensors[$"{i}.txt"] = items[i].Txt;
            tensors[$"{i}.vec"] = items[i].Vec;
        }
        SafeTensorsFile.Save(path, tensors, new Dictionary<string, string> { ["items"] = items.Count.ToString(CultureInfo.InvariantCulture) });
        return new Cache(items, emptyItem);
    }

    /// <summary>The adapter, the optimizer's moments and the step, written atomically side by side.</summary>
    private sealed class Checkpoint(string folder)
    {
        private string State => Path.Combine(folder, "state.json");

        public (int Step, double LossEma) TryRestore(LoraAdapter adapter, AdamW optimizer)
        {
            if (!File.Exists(State)) return (0, double.NaN);
            var state = JsonSerializer.Deserialize<Dictionary<string, double>>(File.ReadAllText(State))!;
            var step = (int)state["step"];
            // A checkpoint written by TorchSharp's optimizer (optimizer-N.bin, before our AdamW) is not resumed.
            if (!File.Exists(OptimizerFile(step))) return (0, double.NaN);
            using (var reader = SafeTensorsFile.Open(Path.Combine(folder, $"lora-{step}.safetensors")))
            {
                var tensors = reader.Keys.ToDictionary(k => k, k => reader.Read(k));
                adapter.LoadStateDict(tensors);
                foreach (var t in tensors.Values) t.Dispose();
            }
            optimizer.Load(OptimizerFile(step));
            return (step, state.TryGetValue("lossEma", out var ema) ? ema : double.NaN);
        }

        private string OptimizerFile(int step) => Path.Combine(folder, $"optimizer-{step}.safetensors");

        public void Save(int step, double lossEma, LoraAdapter adapter, AdamW optimizer)
        {
            Directory.CreateDirectory(folder);
            SafeTensorsFile.Save(Path.Combine(folder, $"lora-{step}.safetensors"), adapter.StateDict());
            optimizer.Save(OptimizerFile(step));
            // The state file names the step last, so a crash mid-save leaves the previous checkpoint in force.
            var tmp = State + ".tmp";
            File.WriteAllText(tmp, JsonSerializer.Serialize(new Dictionary<string, double> { ["step"] = step, ["lossEma"] = double.IsNaN(lossEma) ? 0 : lossEma }));
            File.Move(tmp, State, overwrite: true);
            foreach (var old in Directory.EnumerateFiles(folder).Where(f => !f.Contains($"-{step}.") && !f.EndsWith("state.json")))
                File.Delete(old);
        }
    }
}
