using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Likeness.Core.Webhooks;

public sealed record WebhookAttemptResult(int? StatusCode, string? Error, TimeSpan Duration, bool Succeeded, bool StopRetrying);

/// <summary>
/// One delivery attempt: a fresh timestamp and signature, the same <c>webhook-id</c> as every other attempt of the
/// event. Never throws for what the receiver does (errors, timeouts, redirects); reports it instead.
/// </summary>
public sealed class WebhookDeliverer(IHttpClientFactory clients, TimeProvider clock)
{
    public const string ClientName = "likeness-webhooks";

    public async Task<WebhookAttemptResult> DeliverAsync(string url, string webhookId, string body, byte[] secret, CancellationToken ct)
    {
        var timestamp = clock.GetUtcNow().ToUnixTimeSeconds();
        using var request = new HttpRequestMessage(HttpMethod.Post, url)
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("webhook-id", webhookId);
        request.Headers.Add("webhook-timestamp", timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
        request.Headers.Add("webhook-signature", WebhookSigner.Sign(secret, webhookId, timestamp, body));

        var watch = Stopwatch.StartNew();
        try
        {
            using var response = await clients.CreateClient(ClientName).SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
            var code = (int)response.StatusCode;
            var ok = code is >= 200 and < 300;
            string? error = ok ? null : code is >= 300 and < 400 ? $"redirect ({code}) not followed" : $"HTTP {code}";
            return new WebhookAttemptResult(code, error, watch.Elapsed, ok, StopRetrying: response.StatusCode == HttpStatusCode.Gone);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return new WebhookAttemptResult(null, "timed out", watch.Elapsed, false, false);
        }
        catch (HttpRequestException ex) when (ex.InnerException is WebhookTargetRefusedException refused)
        {
            return new WebhookAttemptResult(null, refused.Message, watch.Elapsed, false, StopRetrying: true);
        }
        catch (HttpRequestException ex)
        {
            return new WebhookAttemptResult(null, "connection failed: " + ex.Message, watch.Elapsed, false, false);
        }
    }
}

/// <summary>The connect-time guard refused every address the host resolved to.</summary>
public sealed class WebhookTargetRefusedException(string message) : IOException(message);

public sealed class WebhookRetrySchedule(Microsoft.Extensions.Options.IOptions<WebhookOptions> options)
{
    /// <summary>When to try again after <paramref name="attemptsSoFar"/> failed attempts; null when the schedule is spent.</summary>
    public DateTimeOffset? NextAttemptAt(int attemptsSoFar, DateTimeOffset now)
    {
        var schedule = options.Value.RetrySchedule;
        return attemptsSoFar >= 1 && attemptsSoFar <= schedule.Count ? now + schedule[attemptsSoFar - 1] : null;
    }
}
