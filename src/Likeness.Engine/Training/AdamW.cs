using System.Globalization;
using Likeness.Engine.SafeTensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Likeness.Engine.Scalars;

namespace Likeness.Engine.Training;

/// <summary>
/// AdamW exactly as TorchSharp's <c>optim.AdamW</c> computes it (decoupled weight decay, bias-corrected moments, the
/// same operations in the same order: the same numbers), with every coefficient held as a Scalar for its call.
/// TorchSharp's own step converts each coefficient to a temporary Scalar, which a collection can free while libtorch
/// reads it (see <see cref="Scalars"/>). The state (step and moments per parameter) saves and loads as safetensors.
/// Over <see cref="FlatParameters"/> the same arithmetic runs once over the whole buffer (the moments are flat too,
/// each parameter's a view, so the saved state is the same).
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly IReadOnlyList<Parameter> _parameters;
    private readonly double _beta1, _beta2, _eps, _weightDecay;
    private readonly long[] _steps;
    private readonly Tensor[] _expAvg;
    private readonly Tensor[] _expAvgSq;
    private readonly FlatParameters? _flat;
    private readonly Tensor? _flatExpAvg, _flatExpAvgSq;

    public AdamW(IEnumerable<Parameter> parameters, double lr, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0)
    {
        _parameters = [.. parameters];
        (LearningRate, _beta1, _beta2, _eps, _weightDecay) = (lr, beta1, beta2, eps, weightDecay);
        _steps = new long[_parameters.Count];
        _expAvg = [.. _parameters.Select(p => zeros_like(p).DetachFromDisposeScope())];
        _expAvgSq = [.. _parameters.Select(p => zeros_like(p).DetachFromDisposeScope())];
    }

    public AdamW(FlatParameters flat, double lr, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0)
    {
        _flat = flat;
        _parameters = flat.Parameters;
        (LearningRate, _beta1, _beta2, _eps, _weightDecay) = (lr, beta1, beta2, eps, weightDecay);
        _steps = new long[_parameters.Count];
        _flatExpAvg = zeros_like(flat.Values).DetachFromDisposeScope();
        _flatExpAvgSq = zeros_like(flat.Values).DetachFromDisposeScope();
        _expAvg = [.. flat.ViewsOf(_flatExpAvg).Select(t => t.DetachFromDisposeScope())];
        _expAvgSq = [.. flat.ViewsOf(_flatExpAvgSq).Select(t => t.DetachFromDisposeScope())];
    }

    /// <summary>The step size of the next <see cref="Step"/>; a schedule may change it between steps.</summary>
    public double LearningRate { get; set; }

    public void ZeroGrad()
    {
        if (_flat is not null)
        {
            _flat.Gradients.zero_();
            return;
        }
        foreach (var p in _parameters)
        {
            using var grad = p.grad;
            grad?.zero_();
        }
    }

    public void Step()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        using var decay = (1 - LearningRate * _weightDecay).ToScalar();
        using var beta1 = _beta1.ToScalar();
        using var beta2 = _beta2.ToScalar();
        using var oneMinusBeta1 = (1 - _beta1).ToScalar();
        using var oneMinusBeta2 = (1 - _beta2).ToScalar();
        using var eps = _eps.ToScalar();
        void Update(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, long step)
        {
            if (_weightDecay != 0) param.mul_(decay);
            var biasCorrection1 = 1 - Math.Pow(_beta1, step);
            var biasCorrection2 = 1 - Math.Pow(_beta2, step);
            expAvg.mul_(beta1).add_(grad, oneMinusBeta1);
            expAvgSq.mul_(beta2).addcmul_(grad, grad, oneMinusBeta2);
            using var sqrtCorrection2 = Math.Sqrt(biasCorrection2).ToScalar();
            var denom = expAvgSq.sqrt().div(sqrtCorrection2).add_(eps, One);
            using var negativeStepSize = (-(LearningRate / biasCorrection1)).ToScalar();
            param.addcdiv_(expAvg, denom, negativeStepSize);
        }
        if (_flat is not null)
        {
            for (var i = 0; i < _steps.Length; i++) _steps[i]++;
            Update(_flat.Values, _flat.Gradients, _flatExpAvg!, _flatExpAvgSq!, _steps.Length == 0 ? 1 : _steps[0]);
            return;
        }
        for (var i = 0; i < _parameters.Count; i++)
        {
            var grad = _parameters[i].grad;
            if (grad is null) continue;
            Update(_parameters[i], grad, _expAvg[i], _expAvgSq[i], ++_steps[i]);
        }
    }

    /// <summary>
    /// Scales the gradients so that their joint L2 norm is at most <paramref name="maxNorm"/> (as
    /// <c>torch.nn.utils.clip_grad_norm_</c>: coefficient maxNorm / (norm + 1e-6) where below 1); returns the norm.
    /// </summary>
    public double ClipGradNorm(double maxNorm)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var grads = _flat is not null ? [_flat.Gradients] : _parameters.Select(p => p.grad).OfType<Tensor>().ToList();
        if (grads.Count == 0) return 0;
        var total = stack(grads.Select(g => g.norm())).norm().item<float>();
        var coefficient = maxNorm / (total + 1e-6);
        if (coefficient < 1)
        {
            using var scale = coefficient.ToScalar();
            foreach (var g in grads) g.mul_(scale);
        }
        return total;
    }

    public void Save(string path)
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < _parameters.Count; i++)
        {
            tensors[$"{i}.exp_avg"] = _expAvg[i];
            tensors[$"{i}.exp_avg_sq"] = _expAvgSq[i];
            metadata[$"{i}.step"] = _steps[i].ToString(CultureInfo.InvariantCulture);
        }
        SafeTensorsFile.Save(path, tensors, metadata);
    }

    public void Load(string path)
    {
        using var noGrad = no_grad();
        using var reader = SafeTensorsFile.Open(path);
        for (var i = 0; i < _parameters.Count; i++)
        {
            using (var expAvg = reader.Read($"{i}.exp_avg")) _expAvg[i].copy_(expAvg);
            using (var expAvgSq = reader.Read($"{i}.exp_avg_sq")) _expAvgSq[i].copy_(expAvgSq);
            _steps[i] = long.Parse(reader.Metadata[$"{i}.step"], CultureInfo.InvariantCulture);
        }
    }

    public void Dispose()
    {
        foreach (var t in _expAvg.Concat(_expAvgSq)) t.Dispose();
        _flatExpAvg?.Dispose();
        _flatExpAvgSq?.Dispose();
    }
}
