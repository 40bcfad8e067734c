using System.Globalization;
using System.Text.Json;
using Likeness.Engine.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Pretraining;

/// <summary>Where a pretraining phase stands, reported after every step.</summary>
public sealed record PretrainProgress(string Phase, int Step, int TotalSteps, double Loss, double StepsPerSecond, TimeSpan Eta);

/// <summary>
/// A phase's resumable state in its work folder: the networks' weights (and their moving averages), the optimizer's
/// moments and the step, written side by side with the state file last, so that a run stopped at any point resumes
/// from the last complete checkpoint. Also the loss log (<c>loss.csv</c>: step, loss) that the curves are drawn from.
/// </summary>
internal sealed class PretrainState(string folder)
{
    private string StateFile => Path.Combine(folder, "state.json");
    public string LossLog => Path.Combine(folder, "loss.csv");

    public int TryRestore(IReadOnlyDictionary<string, nn.Module> modules, Training.AdamW optimizer, IReadOnlyDictionary<string, Tensor>? extra = null)
    {
        if (!File.Exists(StateFile)) return 0;
        var step = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(StateFile))!["step"];
        using (var reader = SafeTensorsFile.Open(Path.Combine(folder, $"weights-{step}.safetensors")))
        using (no_grad())
        {
            foreach (var (name, module) in modules)
                foreach (var (key, tensor) in module.state_dict())
                {
                    using var value = reader.Read($"{name}.{key}", tensor.dtype);
                    tensor.copy_(value);
                }
            foreach (var (key, tensor) in extra ?? new Dictionary<string, Tensor>())
            {
                using var value = reader.Read(key, tensor.dtype);
                tensor.copy_(value);
            }
        }
        // A checkpoint without the optimizer's file (one written by TorchSharp's own optimizer, optimizer-N.bin, before
        // the engine had its own AdamW) resumes with fresh moments.
        var moments = Path.Combine(folder, $"optimizer-{step}.safetensors");
        if (File.Exists(moments)) optimizer.Load(moments);
        // The log may have rows past the checkpoint (steps that will run again): keep those before it.
        if (File.Exists(LossLog))
            File.WriteAllLines(LossLog, File.ReadLines(LossLog).Where(l => int.Parse(l.Split(',')[0], CultureInfo.InvariantCulture) <= step).ToList());
        return step;
    }

    public void Save(int step, IReadOnlyDictionary<string, nn.Module> modules, Training.AdamW optimizer, IReadOnlyDictionary<string, Tensor>? extra = null)
    {
        Directory.CreateDirectory(folder);
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (name, module) in modules)
            foreach (var (key, tensor) in module.state_dict()) tensors[$"{name}.{key}"] = tensor;
        foreach (var (key, tensor) in extra ?? new Dictionary<string, Tensor>()) tensors[key] = tensor;
        SafeTensorsFile.Save(Path.Combine(folder, $"weights-{step}.safetensors"), tensors);
        optimizer.Save(Path.Combine(folder, $"optimizer-{step}.safetensors"));
        var tmp = StateFile + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(new Dictionary<string, int> { ["step"] = step }));
        File.Move(tmp, StateFile, overwrite: true);
        foreach (var old in Directory.EnumerateFiles(folder).Where(f => (f.Contains("weights-") || f.Contains("optimizer-")) && !f.Contains($"-{step}.")))
            File.Delete(old);
    }

    /// <summary>
    /// The steps of a phase from <paramref name="start"/>: the learning rate of the schedule, the loss the phase builds
    /// for a step (in a dispose scope of its own), backward, gradients clipped to norm 1, the optimizer's step, then
    /// <paramref name="after"/>; the loss logged, progress reported, a checkpoint every <paramref name="checkpointEvery"/>
    /// steps and at the end — or at <paramref name="stopAt"/>, where a run may stop early (the schedule still runs to
    /// <paramref name="total"/>, so a rerun continues it exactly).
    /// </summary>
    public void Run(string phase, int start, int total, double peakLearningRate, int warmup, int checkpointEvery,
        Training.AdamW optimizer, IReadOnlyList<TorchSharp.Modules.Parameter> parameters, IReadOnlyDictionary<string, nn.Module> modules,
        IReadOnlyDictionary<string, Tensor>? extra, Func<int, Tensor> loss, Action<int>? after, IProgress<PretrainProgress>? progress, CancellationToken ct,
        int? stopAt = null)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var stop = Math.Min(total, stopAt ?? total);
        for (var step = start; step < stop; step++)
        {
            ct.ThrowIfCancellationRequested();
            optimizer.LearningRate = Training.LearningRateSchedule.WarmupCosine(peakLearningRate, step, total, warmup);
            float value;
            using (NewDisposeScope())
            {
                var l = loss(step);
                optimizer.ZeroGrad();
                l.backward();
                nn.utils.clip_grad_norm_(parameters, 1.0);
                optimizer.Step();
                value = l.item<float>();
                after?.Invoke(step);
            }
            var done = step + 1;
            LogLoss(done, value);
            var rate = (done - start) / watch.Elapsed.TotalSeconds;
            progress?.Report(new PretrainProgress(phase, done, total, value, rate, TimeSpan.FromSeconds((total - done) / rate)));
            if (done % checkpointEvery == 0 || done == stop) Save(done, modules, optimizer, extra);
        }
    }

    public void LogLoss(int step, double loss)
    {
        Directory.CreateDirectory(folder);
        File.AppendAllText(LossLog, string.Create(CultureInfo.InvariantCulture, $"{step},{loss:G6}\n"));
    }

    /// <summary>A <see cref="Random"/> for one step of one phase: the same (seed, phase, step) gives the same draws.</summary>
    public static Random StepRandom(long seed, int phase, int step) => new(HashCode32(seed, phase, step));

    private static int HashCode32(long seed, int phase, int step)
    {
        unchecked
        {
            var h = (ulong)seed * 0x9E3779B97F4A7C15UL ^ (ulong)phase * 0xC2B2AE3D27D4EB4FUL ^ (ulong)step * 0x165667B19E3779F9UL;
            h ^= h >> 29;
            h *= 0xBF58476D1CE4E5B9UL;
            h ^= h >> 32;
            return (int)(h & 0x7FFFFFFF);
        }
    }
}
