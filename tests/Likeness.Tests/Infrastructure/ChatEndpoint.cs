using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Likeness.Tests.Infrastructure;

/// <summary>
/// A hosted vision model's OpenAI-compatible API, as a real HTTP server on loopback: <c>POST /v1/chat/completions</c>
/// answers in OpenAI's JSON shape, after a latency, or with the scripted failures queued first.
/// </summary>
public sealed class ChatEndpoint : IAsyncDisposable
{
    /// <summary>One scripted answer: a status (with Retry-After seconds), or a 200 whose content is given, after a delay.</summary>
    public sealed record Reply(int Status = 200, string? Content = null, int? RetryAfterSeconds = null, TimeSpan Delay = default);

    public sealed record Call(DateTime ReceivedAt, string? Authorization, JsonElement Body);

    private readonly WebApplication _app;
    private readonly ConcurrentQueue<Reply> _script = new();
    private int _inFlight;
    private int _count;

    private ChatEndpoint(WebApplication app) => _app = app;

    public ConcurrentQueue<Call> Calls { get; } = new();
    /// <summary>The most calls that were being answered at the same moment.</summary>
    public int MostAtOnce;
    /// <summary>How long an unscripted answer takes.</summary>
    public TimeSpan Latency { get; set; }
    /// <summary>The base URL a client is given (ends in /v1).</summary>
    public string BaseUrl { get; private set; } = "";

    /// <summary>The caption an unscripted call gets; the number makes each one distinct.</summary>
    public static string Answer(int n) => $"A head-and-shoulders shot of a ceramic mug on a wooden desk, soft window light from the left, shallow depth of field, frame {n}.";

    public void Script(params Reply[] replies) { foreach (var r in replies) _script.Enqueue(r); }

    public static async Task<ChatEndpoint> StartAsync()
    {
        ChatEndpoint? endpoint = null;
        var (app, address) = await Loopback.StartAsync(app =>
            app.MapPost("/v1/chat/completions", (Func<HttpContext, Task<IResult>>)(http => endpoint!.AnswerAsync(http))));
        endpoint = new ChatEndpoint(app) { BaseUrl = address + "/v1" };
        return endpoint;
    }

    private async Task<IResult> AnswerAsync(HttpContext http)
    {
        var now = Interlocked.Increment(ref _inFlight);
        try
        {
            int seen;
            do { seen = MostAtOnce; } while (now > seen && Interlocked.CompareExchange(ref MostAtOnce, now, seen) != seen);
            var body = await JsonSerializer.DeserializeAsync<JsonElement>(http.Request.Body);
            Calls.Enqueue(new Call(DateTime.UtcNow, http.Request.Headers.Authorization.ToString(), body));
            var n = Interlocked.Increment(ref _count);
            var reply = _script.TryDequeue(out var scripted) ? scripted : new Reply(Content: Answer(n), Delay: Latency);
            if (reply.Delay > TimeSpan.Zero)
            {
                try { await Task.Delay(reply.Delay, http.RequestAborted); }
                catch (OperationCanceledException) { return Results.Empty; }
            }
            if (reply.Status != 200)
            {
                if (reply.RetryAfterSeconds is { } seconds) http.Response.Headers.RetryAfter = seconds.ToString();
                return Results.Json(new { error = new { message = "scripted failure", type = "server_error" } }, statusCode: reply.Status);
            }
            return Results.Json(new
            {
                id = $"chatcmpl-{n}", @object = "chat.completion", created = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
                model = body.GetProperty("model").GetString(),
                choices = new[] { new { index = 0, message = new { role = "assistant", content = reply.Content ?? "" }, finish_reason = "stop" } },
                usage = new { prompt_tokens = 100, completion_tokens = 30, total_tokens = 130 },
            });
        }
        finally { Interlocked.Decrement(ref _inFlight); }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
