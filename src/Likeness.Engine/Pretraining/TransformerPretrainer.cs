using System.Diagnostics;
using System.Globalization;
using Likeness.Engine.Autoencoder;
using Likeness.Engine.Flux;
using Likeness.Engine.SafeTensors;
using Likeness.Engine.Sampling;
using Likeness.Engine.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Pretraining;

/// <param name="StopAt">Stop after this step (with a checkpoint) although the schedule runs to <paramref name="Steps"/>: a rerun
/// continues from there as if never stopped.</param>
/// <param name="UniformTimeShare">The share of samples whose t is drawn uniformly from [0, 1] instead of sigmoid(N(0, 1)):
/// the logit-normal density seldom reaches t near 1, where an image is all noise and only the prompt can say what to draw.</param>
public sealed record TransformerPretrainOptions(int Steps = 3000, int Batch = 48, int Scenes = 20_000, double LearningRate = 5e-4,
    int Warmup = 200, double CaptionDropout = 0.1, double EmaDecay = 0.999, int CheckpointEvery = 100, double UniformTimeShare = 0.5,
    int? StopAt = null);

/// <summary>
/// Phase 2: the transformer and the tiny text encoders learn together, by flow matching with the LoRA trainer's and
/// the sampler's conventions — x_t = (1 − t)·x0 + t·ε, t = sigmoid(N(0, 1)), target ε − x0, MSE — on latents of
/// scenes composed and encoded once (the autoencoder is frozen by then). One caption in ten is dropped (the empty
/// prompt then means "any scene"), the guidance input is drawn from [1, 5] so that any setting a caller gives is one
/// the model has seen, and the weights that ship are an exponential moving average of the trained ones.
/// </summary>
public sealed class TransformerPretrainer(SceneComposer training, long seed, string workFolder, FluxPreset preset)
{
    private static readonly Scalar GuidanceSpan = 4.0.ToScalar(), GuidanceMin = 1.0.ToScalar();

    public string Folder => Path.Combine(workFolder, "transformer");
    private string ScenesFile => Path.Combine(Folder, "scenes.safetensors");
    private string CaptionsFile => Path.Combine(Folder, "captions.txt");

    /// <summary>The trained networks (moving averages), in eval mode.</summary>
    public sealed record Result(FluxModel Transformer, T5Encoder T5, ClipTextModel Clip);

    public Result Run(TransformerPretrainOptions o, AutoEncoder ae, IProgress<PretrainProgress>? progress, CancellationToken ct)
    {
        var (latents, captions) = LoadOrEncodeScenes(o.Scenes, ae, progress, ct);
        using var _ = latents;
        var transformer = FluxModel.CreateInitialized(preset.Transformer, preset.InitSeed);
        var (t5, clip) = TextConditioner.CreateTinyEncoders(preset.InitSeed + 2);
        var modules = new Dictionary<string, nn.Module> { ["transformer"] = transformer, ["t5"] = t5, ["clip"] = clip };
        var parameters = modules.Values.SelectMany(m => m.parameters()).ToList();
        // The moving averages: one copy of every trainable tensor, saved with the checkpoint under "ema.".
        var trained = modules.SelectMany(m => m.Value.named_parameters().Select(p => (Key: $"ema.{m.Key}.{p.name}", p.parameter))).ToList();
        var averages = trained.ToDictionary(p => p.Key, p => p.parameter.detach().clone());
        var averaged = trained.Select(p => (Average: averages[p.Key], Parameter: p.parameter)).ToList();

        using var optimizer = new Training.AdamW(parameters, o.LearningRate);
        var state = new PretrainState(Folder);
        var start = state.TryRestore(modules, optimizer, averages);
        var t5Tokenizer = new ByteT5Tokenizer();
        var clipTokenizer = new ByteClipTokenizer();
        var (latentH, latentW) = (latents.shape[2], latents.shape[3]);
        using var imgIds = FluxSampling.ImageIds(o.Batch, latentH, latentW);
        using var txtIds = FluxSampling.TextIds(o.Batch, preset.MaxT5Tokens);
        using var uniformShare = o.UniformTimeShare.ToScalar();
        foreach (var m in modules.Values) m.train();
        state.Run("transformer", start, o.Steps, o.LearningRate, o.Warmup, o.CheckpointEvery, optimizer, parameters, modules, averages, step =>
        {
            var random = PretrainState.StepRandom(seed, 2, step);
            var index = Enumerable.Range(0, o.Batch).Select(_ => (long)random.Next((int)latents.shape[0])).ToArray();
            var prompts = index.Select(i => random.NextDouble() < o.CaptionDropout ? "" : captions[(int)i]).ToList();
            using var generator = new Generator((ulong)random.NextInt64(), torch.device("cpu"));
            var x0 = latents.index_select(0, tensor(index));
            var logitNormal = sigmoid(randn([o.Batch], generator: generator));
            var noise = randn(x0.shape, generator: generator);
            var t = where(rand([o.Batch], generator: generator) < uniformShare, rand([o.Batch], generator: generator), logitNormal);
            var guidance = rand([o.Batch], generator: generator).mul(GuidanceSpan).add(GuidanceMin, Scalars.One);
            var target = noise - x0;
            var xt = x0.add(t.view(-1, 1, 1, 1).mul(target), Scalars.One);
            var txt = t5.forward(tensor(prompts.SelectMany(p => t5Tokenizer.Encode(p, preset.MaxT5Tokens)).ToArray(), [o.Batch, preset.MaxT5Tokens]));
            var clipLength = clip.Params.MaxPositions;
            var vec = clip.forward(tensor(prompts.SelectMany(p => clipTokenizer.Encode(p, clipLength)).ToArray(), [o.Batch, clipLength]));
            var pred = transformer.forward(FluxSampling.Pack(xt), imgIds, txt, txtIds, t, vec, transformer.Params.GuidanceEmbed ? guidance : null);
            return nn.functional.mse_loss(pred, FluxSampling.Pack(target));
        }, step =>
        {
            // Early on the average follows closely (1 − decay would leave it at the random start for thousands of steps).
            using var weight = tensor(1 - Math.Min(o.EmaDecay, (1.0 + step) / (10.0 + step)), ScalarType.Float32);
            using (no_grad())
                foreach (var (average, parameter) in averaged) average.lerp_(parameter, weight);
        }, progress, ct, o.StopAt);

        using (no_grad())
            foreach (var (average, parameter) in averaged) parameter.copy_(average);
        foreach (var a in averages.Values) a.Dispose();
        foreach (var m in modules.Values) m.eval();
        return new Result(transformer, t5, clip);
    }

    /// <summary>
    /// The scenes the transformer learns from: composed from the training objects and encoded by the trained
    /// autoencoder once (kept in the work folder, so a resumed run does not encode them again).
    /// </summary>
    private (Tensor Latents, string[] Captions) LoadOrEncodeScenes(int count, AutoEncoder ae, IProgress<PretrainProgress>? progress, CancellationToken ct)
    {
        if (File.Exists(ScenesFile) && File.Exists(CaptionsFile))
        {
            using var reader = SafeTensorsFile.Open(ScenesFile);
            var captions = File.ReadAllLines(CaptionsFile);
            if (captions.Length == count) return (reader.Read("latents"), captions);
        }
        Directory.CreateDirectory(Folder);
        using var noGrad = no_grad();
        var chunks = new List<Tensor>();
        var all = new List<string>();
        var watch = Stopwatch.StartNew();
        const int chunk = 32;
        for (var done = 0; done < count; done += chunk)
        {
            ct.ThrowIfCancellationRequested();
            var random = PretrainState.StepRandom(seed, 5, done / chunk);
            var n = Math.Min(chunk, count - done);
            using var scope = NewDisposeScope();
            var images = training.Batch(random, n, all);
            chunks.Add(ae.Encode(images).MoveToOuterDisposeScope());
            var rate = (done + n) / watch.Elapsed.TotalSeconds;
            progress?.Report(new PretrainProgress("scenes", done + n, count, 0, rate, TimeSpan.FromSeconds((count - done - n) / rate)));
        }
        var latents = cat(chunks, 0);
        foreach (var c in chunks) c.Dispose();
        SafeTensorsFile.Save(ScenesFile, new Dictionary<string, Tensor> { ["latents"] = latents },
            new Dictionary<string, string> { ["count"] = count.ToString(CultureInfo.InvariantCulture) });
        File.WriteAllLines(CaptionsFile, all);
        return (latents, all.ToArray());
    }
}
