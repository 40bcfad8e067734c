using Likeness.Core.Ports;
using Microsoft.Extensions.Logging;

namespace Likeness.Core.Captioning;

/// <summary>
/// <c>--captioner-fallback local</c>: a photo the remote captioner could not describe, after all its retries, is
/// described by the local one instead of failing the LoRA. The caption's source says which one wrote it.
/// </summary>
public sealed class FallbackCaptioner(ICaptioner primary, ICaptioner fallback, ILogger<FallbackCaptioner> logger) : ICaptioner
{
    public int Parallelism => primary.Parallelism;

    public async Task<Caption> CaptionAsync(CaptionInput input, CancellationToken cancellationToken)
    {
        try
        {
            return await primary.CaptionAsync(input, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning("The captioner failed ({Reason}); this photo is captioned by the fallback", e.Message);
            return await fallback.CaptionAsync(input, cancellationToken);
        }
    }
}
