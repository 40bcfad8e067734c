using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Likeness.Tests.Infrastructure;

/// <summary>A customer's webhook endpoint: a real HTTP server on loopback that records every delivery.</summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<int> _scriptedStatuses = new();

    public sealed record Delivery(string Body, IHeaderDictionary Headers, DateTime ReceivedAt);

    public ConcurrentQueue<Delivery> Deliveries { get; } = new();
    public string Url { get; private set; } = "";

    private WebhookReceiver(WebApplication app) => _app = app;

    /// <summary>Answers the next deliveries with these statuses (then 200).</summary>
    public void Script(params int[] statuses) { foreach (var s in statuses) _scriptedStatuses.Enqueue(s); }

    public static async Task<WebhookReceiver> StartAsync()
    {
        WebhookReceiver? receiver = null;
        var (app, address) = await Loopback.StartAsync(app => app.MapPost("/hook", async (HttpContext http) =>
        {
            using var reader = new StreamReader(http.Request.Body);
            var body = await reader.ReadToEndAsync();
            var headers = new HeaderDictionary();
            foreach (var (k, v) in http.Request.Headers) headers[k] = v;
            receiver!.Deliveries.Enqueue(new Delivery(body, headers, DateTime.UtcNow));
            return Results.StatusCode(receiver._scriptedStatuses.TryDequeue(out var s) ? s : 200);
        }));
        // Nothing can call before the URL is known, and it is known only from here on.
        receiver = new WebhookReceiver(app) { Url = address + "/hook" };
        return receiver;
    }

    public async Task<List<Delivery>> WaitForAsync(int count, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (Deliveries.Count < count && DateTime.UtcNow < deadline) await Task.Delay(50);
        Assert.True(Deliveries.Count >= count, $"expected {count} deliveries, got {Deliveries.Count}");
        return Deliveries.ToList();
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
