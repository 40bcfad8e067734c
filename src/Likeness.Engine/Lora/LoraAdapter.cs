using System.Globalization;
using Likeness.Engine.Flux;
using Likeness.Engine.SafeTensors;
using Likeness.Engine.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Likeness.Engine.Scalars;

namespace Likeness.Engine.Lora;

/// <summary>
/// A LoRA on the transformer's block linears (attention qkv/proj, MLPs, modulation, linear1/linear2): A [r, in]
/// random, B [out, r] zero, so a fresh adapter leaves the model unchanged. Its weights are fp32 whatever the base's
/// dtype, so AdamW updates are not rounded to bf16. Files use the native layout
/// <c>&lt;reference path&gt;.lora_A.weight</c> / <c>.lora_B.weight</c> with rank and alpha in the metadata.
/// </summary>
public sealed class LoraAdapter : IDisposable
{
    private readonly Dictionary<string, (LoraLinear Layer, LoraWeights Weights)> _layers;
    private float _strength = 1f;

    public int Rank { get; }
    public float Alpha { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    private LoraAdapter(Dictionary<string, (LoraLinear, LoraWeights)> layers, int rank, float alpha, IReadOnlyDictionary<string, string> metadata)
    {
        _layers = layers;
        Rank = rank;
        Alpha = alpha;
        Metadata = metadata;
    }

    /// <summary>The paths a LoRA adapts: every linear inside the double and single blocks.</summary>
    public static bool IsTarget(string path) =>
        path.StartsWith("double_blocks.", StringComparison.Ordinal) || path.StartsWith("single_blocks.", StringComparison.Ordinal);

    public IReadOnlyCollection<string> Paths => _layers.Keys;

    public float Strength
    {
        get => _strength;
        set
        {
            if (_layers.Values.Any(l => l.Weights.Merged)) throw new InvalidOperationException("Unmerge before changing the strength.");
            _strength = value;
            foreach (var (_, w) in _layers.Values) w.Strength = value;
        }
    }

    public static LoraAdapter Create(FluxModel model, int rank, float? alpha = null, long seed = 0)
    {
        if (rank < 1) throw new ArgumentOutOfRangeException(nameof(rank));
        var a = alpha ?? rank;
        using var generator = new Generator((ulong)seed, device("cpu"));
        var targets = model.Linears().Where(l => IsTarget(l.Path)).OrderBy(l => l.Path, StringComparer.Ordinal).ToList();
        var initial = new List<Tensor>();
        foreach (var (_, layer) in targets)
        {
            // A ~ N(0, 1/r): the update starts at exactly zero through B = 0 and grows from there.
            using var normal = randn([rank, layer.InFeatures], generator: generator);
            using var std = (1.0 / Math.Sqrt(rank)).ToScalar();
            initial.Add(normal.mul(std));
            initial.Add(zeros([layer.OutFeatures, rank], ScalarType.Float32));
        }
        // Trained as one flat buffer (see FlatParameters), in the order of TrainableParameters.
        var flat = new FlatParameters(initial, targets.Count == 0 ? CPU : targets[0].Layer.weight.device);
        foreach (var t in initial) t.Dispose();
        var layers = new Dictionary<string, (LoraLinear, LoraWeights)>(StringComparer.Ordinal);
        for (var i = 0; i < targets.Count; i++)
            layers[targets[i].Path] = (targets[i].Layer, new LoraWeights(flat.Parameters[2 * i], flat.Parameters[2 * i + 1], a / rank));
        var adapter = Attach(model, layers, rank, a, new Dictionary<string, string>());
        adapter.Flat = flat;
        return adapter;
    }

    /// <summary>A created adapter's trainable tensors as one buffer (null for a loaded one).</summary>
    public FlatParameters? Flat { get; private set; }

    /// <summary>
    /// Loads an adapter file onto the model — native, PEFT/diffusers or kohya, told apart by its keys — with each
    /// layer's own scale (alpha = rank where a file gives none).
    /// </summary>
    public static LoraAdapter Load(FluxModel model, string path)
    {
        var linears = model.Linears().ToDictionary(l => l.Path, l => l.Layer, StringComparer.Ordinal);
        var read = AdapterFormats.Read(path, linears.Keys.ToList(), model.Params);
        if (read.Count == 0) throw new InvalidDataException($"{path} adapts no layer.");
        var layers = new Dictionary<string, (LoraLinear, LoraWeights)>(StringComparer.Ordinal);
        foreach (var (layerPath, l) in read)
        {
            if (!linears.TryGetValue(layerPath, out var layer)) throw new InvalidDataException($"{path}: '{layerPath}' is not a linear layer of this model.");
            if (l.A.shape.Length != 2 || l.B.shape.Length != 2 || l.A.shape[1] != layer.InFeatures || l.B.shape[0] != layer.OutFeatures || l.A.shape[0] != l.B.shape[1])
                throw new InvalidDataException($"{path}: '{layerPath}' has shapes that do not fit the layer.");
            var A = new Parameter(l.A.to(ScalarType.Float32, layer.weight.device), requires_grad: false);
            var B = new Parameter(l.B.to(ScalarType.Float32, layer.weight.device), requires_grad: false);
            layers[layerPath] = (layer, new LoraWeights(A, B, l.Scale));
        }
        var first = read.OrderBy(kv => kv.Key, StringComparer.Ordinal).First().Value;
        var rank = (int)first.A.shape[0];
        using var reader = SafeTensorsFile.Open(path);
        return Attach(model, layers, rank, first.Scale * rank, new Dictionary<string, string>(reader.Metadata));
    }

    private static LoraAdapter Attach(FluxModel model, Dictionary<string, (LoraLinear Layer, LoraWeights Weights)> layers, int rank, float alpha, IReadOnlyDictionary<string, string> metadata)
    {
        if (model.Linears().Any(l => l.Layer.Adapter is not null)) throw new InvalidOperationException("The model already carries an adapter; detach it first.");
        foreach (var (layer, weights) in layers.Values) layer.Adapter = weights;
        return new LoraAdapter(layers, rank, alpha, metadata);
    }

    public IReadOnlyList<Parameter> TrainableParameters() =>
        _layers.OrderBy(l => l.Key, StringComparer.Ordinal).SelectMany(l => new[] { l.Value.Weights.A, l.Value.Weights.B }).ToList();

    /// <summary>The adapter's tensors by native key (shared with the adapter, not copies).</summary>
    public Dictionary<string, Tensor> StateDict()
    {
        var dict = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (path, (_, w)) in _layers)
        {
            dict[path + ".lora_A.weight"] = w.A;
            dict[path + ".lora_B.weight"] = w.B;
        }
        return dict;
    }

    public void LoadStateDict(IReadOnlyDictionary<string, Tensor> state)
    {
        using var noGrad = no_grad();
        foreach (var (key, target) in StateDict())
        {
            if (!state.TryGetValue(key, out var value)) throw new InvalidDataException($"The adapter state lacks '{key}'.");
            target.copy_(value);
        }
    }

    public void Save(string path, IReadOnlyDictionary<string, string> metadata)
    {
        var meta = new Dictionary<string, string>(metadata)
        {
            ["format"] = "likeness-native",
            ["rank"] = Rank.ToString(CultureInfo.InvariantCulture),
            ["alpha"] = Alpha.ToString(CultureInfo.InvariantCulture),
        };
        SafeTensorsFile.Save(path, StateDict(), meta);
    }

    /// <summary>W += strength·(α/r)·B·A in place: inference without the adapter's extra matmuls.</summary>
    public void Merge() => ForEachUnmerged(+1, merged: true);

    public void Unmerge() => ForEachUnmerged(-1, merged: false);

    private void ForEachUnmerged(int sign, bool merged)
    {
        using var noGrad = no_grad();
        foreach (var (layer, w) in _layers.Values)
        {
            if (w.Merged == merged) continue;
            using var product = w.B.matmul(w.A);
            using var factor = (sign * w.Scale * w.Strength).ToScalar();
            using var delta = product.mul(factor);
            using var cast = delta.to_type(layer.weight.dtype);
            layer.weight.add_(cast, One);
            w.Merged = merged;
        }
    }

    /// <summary>Takes the adapter off the model (unmerging first), leaving the base behaviour.</summary>
    public void Detach()
    {
        Unmerge();
        foreach (var (layer, _) in _layers.Values) layer.Adapter = null;
    }

    public void Dispose()
    {
        Detach();
        foreach (var (_, w) in _layers.Values) w.Dispose();
        _layers.Clear();
        Flat?.Dispose();
    }
}
