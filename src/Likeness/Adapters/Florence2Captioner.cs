using Likeness.Core.Captioning;
using Likeness.Core.Ports;
using Likeness.Engine;
using Likeness.Engine.Captioning;
using TorchSharp;

namespace Likeness.Adapters;

/// <summary>
/// <c>--captioner florence2</c>: Florence-2 (base or large) run by the engine in this process, on the CPU, from the
/// model folder of <c>--captioner-models</c>, with the <c>&lt;MORE_DETAILED_CAPTION&gt;</c> task and 3-beam search, as
/// fluxgym and other trainers caption. The model loads on the first photo (an API-only process never pays for it) and
/// is shared by every caption; at most <c>--captioner-concurrency</c> photos run at once, the CPU threads split among them.
/// The answer goes through the same checks as a remote model's; the trigger word and class phrase are added later by
/// <see cref="CaptionComposer"/>. Decoding is deterministic, so an unusable answer is not asked for again.
/// </summary>
public sealed class Florence2Captioner : ICaptioner, IDisposable
{
    private readonly Lazy<Florence2Captioning> _model;
    private readonly SemaphoreSlim _slots;
    private readonly int _threads;
    private readonly ILogger<Florence2Captioner> _logger;

    /// <summary>Openings Florence-2 puts before nearly every detailed caption; the composed lead says what they say.</summary>
    private static readonly string[] LeadIns = ["The image shows ", "The image is ", "This image shows ", "In this image, ", "In the image, "];

    public Florence2Captioner(string folder, int concurrency, int? threads, ILogger<Florence2Captioner> logger)
    {
        _model = new Lazy<Florence2Captioning>(() =>
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var model = Florence2Captioning.Load(folder);
            logger.LogInformation("Florence-2 loaded from {Folder} in {Seconds:F1} s", folder, watch.Elapsed.TotalSeconds);
            return model;
        }, LazyThreadSafetyMode.ExecutionAndPublication);
        Parallelism = concurrency;
        _slots = new SemaphoreSlim(concurrency, concurrency);
        _threads = threads ?? Math.Max(1, Environment.ProcessorCount / concurrency);
        _logger = logger;
    }

    public int Parallelism { get; }

    public async Task<Caption> CaptionAsync(CaptionInput input, CancellationToken cancellationToken)
    {
        await _slots.WaitAsync(cancellationToken);
        try
        {
            var answer = await Task.Run(() =>
            {
                EngineThreads.Apply(torch.CPU, _threads);
                return _model.Value.Caption(input.Jpeg, Florence2Tasks.MoreDetailedCaption);
            }, cancellationToken);
            var caption = CaptionAnswer.Accept(Shorten(StripLeadIn(answer)), Florence2Tasks.Prompt(Florence2Tasks.MoreDetailedCaption), out var reason);
            if (caption is null)
            {
                _logger.LogWarning("Unusable caption from Florence-2 ({Reason})", reason);
                throw new InvalidOperationException($"Florence-2 gave no usable caption: {reason}.");
            }
            return new Caption(caption, CaptionSources.Florence2);
        }
        finally
        {
            _slots.Release();
        }
    }

    private static string StripLeadIn(string caption)
    {
        foreach (var lead in LeadIns)
            if (caption.StartsWith(lead, StringComparison.OrdinalIgnoreCase)) return caption[lead.Length..].TrimStart();
        return caption;
    }

    /// <summary>A paragraph longer than a caption may be is cut after its last whole sentence that fits.</summary>
    internal static string Shorten(string caption)
    {
        if (caption.Length <= CaptionAnswer.MaxLength) return caption;
        var cut = caption.LastIndexOf(". ", CaptionAnswer.MaxLength - 1, StringComparison.Ordinal);
        return cut > 0 ? caption[..(cut + 1)] : caption[..CaptionAnswer.MaxLength].TrimEnd();
    }

    public void Dispose()
    {
        if (_model.IsValueCreated) _model.Value.Dispose();
        _slots.Dispose();
    }
}
