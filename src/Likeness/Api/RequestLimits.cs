using Likeness.Hosting;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Likeness.Api;

/// <summary>
/// URL, header and upload-rate limits. Kestrel refuses an over-long request line (414) or oversized headers (431) before
/// any middleware runs and answers with an empty body, so its hard limits are set well above the service's
/// (<see cref="LikenessOptions.RequestLimitSettings"/>) and the first middleware enforces the service's own with
/// problem+json. Only a request past Kestrel's hard limits (4× the service's, at least 64 KiB of URL and 128 KiB of
/// headers) still gets Kestrel's bare answer.
/// </summary>
public static class RequestLimits
{
    public const string UriTooLong = "uri_too_long";
    public const string HeadersTooLarge = "headers_too_large";
    public const string RequestTimeout = "request_timeout";

    private const int HardLimitFactor = 4;
    private const int MinHardUrlBytes = 64 * 1024;
    private const int MinHardHeaderBytes = 128 * 1024;
    /// <summary>HTTP/1.1 counts ": " and CRLF around every header field.</summary>
    private const int HeaderFieldOverhead = 4;

    /// <summary>Refuses settings outside their ranges at start, naming them (nested settings escape the options' own validation).</summary>
    public static void Check(LikenessOptions.RequestLimitSettings limits)
    {
        var errors = new List<System.ComponentModel.DataAnnotations.ValidationResult>();
        if (!System.ComponentModel.DataAnnotations.Validator.TryValidateObject(limits, new(limits), errors, validateAllProperties: true))
            throw new Microsoft.Extensions.Options.OptionsValidationException(LikenessOptions.Section + ":Limits", typeof(LikenessOptions.RequestLimitSettings),
                errors.Select(e => $"Likeness:Limits: {e.ErrorMessage}"));
    }

    public static void ConfigureKestrel(KestrelServerLimits kestrel, LikenessOptions.RequestLimitSettings limits)
    {
        kestrel.MaxRequestBodySize = LoraUpload.MaxBodyBytes + 1024 * 1024;
        kestrel.MaxRequestLineSize = Math.Max(MinHardUrlBytes, limits.MaxUrlBytes * HardLimitFactor);
        kestrel.MaxRequestHeadersTotalSize = Math.Max(MinHardHeaderBytes, limits.MaxHeaderBytes * HardLimitFactor);
        kestrel.MaxRequestHeaderCount = limits.MaxHeaderCount * HardLimitFactor;
        // Kestrel checks the rate once per second against the bytes read so far; the app is told by a
        // BadHttpRequestException (408) from its read, which the upload turns into request_timeout.
        kestrel.MinRequestBodyDataRate = limits.MinUploadBytesPerSecond == 0
            ? null
            : new MinDataRate(limits.MinUploadBytesPerSecond, limits.MinUploadRateGrace);
    }

    public static IApplicationBuilder UseRequestLimits(this IApplicationBuilder app, LikenessOptions.RequestLimitSettings limits) => app.Use(async (context, next) =>
    {
        var target = context.Features.Get<IHttpRequestFeature>()?.RawTarget ?? context.Request.Path + context.Request.QueryString;
        if (target.Length > limits.MaxUrlBytes)
        {
            await RefuseAsync(context, Problems.Of(StatusCodes.Status414UriTooLong, UriTooLong,
                $"The request's URL is {target.Length} bytes; at most {limits.MaxUrlBytes} are accepted."));
            return;
        }
        var headers = context.Request.Headers;
        long headerBytes = 0;
        foreach (var (name, values) in headers)
            foreach (var value in values) headerBytes += name.Length + (value?.Length ?? 0) + HeaderFieldOverhead;
        if (headers.Count > limits.MaxHeaderCount || headerBytes > limits.MaxHeaderBytes)
        {
            await RefuseAsync(context, Problems.Of(StatusCodes.Status431RequestHeaderFieldsTooLarge, HeadersTooLarge,
                $"The request carries {headers.Count} header fields, {headerBytes} bytes; at most {limits.MaxHeaderCount} fields and {limits.MaxHeaderBytes} bytes are accepted."));
            return;
        }
        await next(context);
    });

    /// <summary>The refusal, and the connection closed after it: the request's body (if any) is not read.</summary>
    private static Task RefuseAsync(HttpContext context, IResult problem)
    {
        context.Response.Headers.Connection = "close";
        return problem.ExecuteAsync(context);
    }
}
