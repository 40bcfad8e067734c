using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Likeness.Hosting;
using HostTelemetry = Likeness.Hosting.Telemetry;
using Likeness.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Likeness.Tests.Telemetry;

/// <summary>What leaves the process: OTLP only where configured, the Prometheus scrape endpoint only where asked for.</summary>
[Collection(ProcessTests.Name)]
public sealed class ExportTests
{
    private const string Traces = "/v1/traces";
    private const string Metrics = "/v1/metrics";
    private const string HttpProtobuf = "http/protobuf";

    [Theory]
    [InlineData("Likeness:Telemetry:OtlpEndpoint", "Likeness:Telemetry:OtlpProtocol")] // --otlp-endpoint, --otlp-protocol
    [InlineData(HostTelemetry.OtlpEndpointKey, HostTelemetry.OtlpProtocolKey)]
    public async Task Exports_traces_and_metrics_to_the_configured_OTLP_collector(string endpointKey, string protocolKey)
    {
        var received = new ConcurrentQueue<(string Path, string? ContentType)>();
        var (collector, address) = await Loopback.StartAsync(app => app.MapPost("/v1/{signal}", (HttpContext http) =>
        {
            received.Enqueue((http.Request.Path, http.Request.ContentType));
            return Results.Ok();
        }));
        await using (collector)
        {
            var server = await LikenessServer.StartAsync(new Dictionary<string, string?> { [endpointKey] = address, [protocolKey] = HttpProtobuf });
            await using (server)
            {
                Assert.Equal(HttpStatusCode.OK, (await server.Client.GetAsync("/v2/team")).StatusCode);
            }
            // Stopping the host flushes both providers.
            var paths = received.Select(r => r.Path).ToHashSet();
            var seen = string.Join(", ", received.Select(r => r.Path));
            Assert.True(paths.Contains(Traces) && paths.Contains(Metrics), $"the collector received: {seen}");
            Assert.All(received, r => Assert.Equal("application/x-protobuf", r.ContentType));
        }
    }

    [SkippableFact]
    public async Task Exports_nothing_over_OTLP_unless_an_endpoint_is_configured()
    {
        Skip.If(Environment.GetEnvironmentVariable(HostTelemetry.OtlpEndpointKey) is not null, "OTEL_EXPORTER_OTLP_ENDPOINT is set for the test run");
        // An exporter left on by default would send to the SDK's default endpoint, localhost:4317 (grpc): listen there.
        using var listener = new TcpListener(IPAddress.IPv6Any, DefaultOtlpPort);
        listener.Server.DualMode = true;
        try { listener.Start(); }
        catch (SocketException) { Skip.If(true, $"port {DefaultOtlpPort} is in use"); }
        var connections = 0;
        using var stop = new CancellationTokenSource();
        var accepting = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try { using var client = await listener.AcceptTcpClientAsync(stop.Token); Interlocked.Increment(ref connections); }
                catch (OperationCanceledException) { return; }
            }
        });

        await RequestAndStopAsync([]);
        Assert.Equal(0, Volatile.Read(ref connections));

        // The same listener does see an exporter that is configured for it.
        await RequestAndStopAsync(new() { [HostTelemetry.OtlpEndpointKey] = $"http://localhost:{DefaultOtlpPort}" });
        Assert.True(Volatile.Read(ref connections) > 0, "a configured exporter never connected");
        await stop.CancelAsync();
        await accepting;
    }

    [Fact]
    public async Task Answers_prometheus_scrapes_when_asked()
    {
        await using var server = await LikenessServer.StartAsync(new Dictionary<string, string?>
        {
            [Setting.Prometheus.Key] = "true",
            ["Likeness:Telemetry:QueueSampleInterval"] = "00:00:00.200",
        });
        Assert.Equal(HttpStatusCode.OK, (await server.Client.GetAsync("/v2/team")).StatusCode);

        using var scraper = server.CreateClient(apiKey: null); // a scraper has no API key
        var body = await ScrapeAsync(scraper);
        Assert.Matches("""(?m)^likeness_queue_age_seconds\{[^}]*queue="training"[^}]*\} 0""", body);
        Assert.Contains("# TYPE http_server_request_duration_seconds histogram", body);
    }

    [Fact]
    public async Task A_worker_answers_scrapes_on_its_urls_when_asked_and_serves_nothing_else()
    {
        var data = LikenessServer.NewDataFolder();
        var url = $"http://127.0.0.1:{LikenessServer.FreePort()}";
        using var worker = LikenessHost.BuildWorker(new Dictionary<string, string?>
        {
            [Setting.Data.Key] = data,
            [Setting.Urls.Key] = url,
            [Setting.Queues.Key] = Core.Data.JobQueues.Webhook,
            [Setting.Prometheus.Key] = "true",
            ["Likeness:Telemetry:QueueSampleInterval"] = "00:00:00.200",
        });
        await worker.StartAsync();
        try
        {
            using var scraper = new HttpClient { BaseAddress = new Uri(url) };
            await ScrapeAsync(scraper);
            Assert.Equal(HttpStatusCode.NotFound, (await scraper.GetAsync("/v2/team")).StatusCode);
        }
        finally
        {
            await worker.StopAsync();
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Scrapes until the queue gauges have their first sample; checks the exposition format and returns the body.</summary>
    private static async Task<string> ScrapeAsync(HttpClient scraper)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        string body;
        HttpResponseMessage response;
        do
        {
            response = await scraper.GetAsync("/metrics");
            body = await response.Content.ReadAsStringAsync();
            if (body.Contains("likeness_queue_depth")) break;
            await Task.Delay(200);
        }
        while (DateTime.UtcNow < deadline);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType);
        Assert.Contains("# TYPE likeness_queue_depth gauge", body);
        Assert.Matches("""(?m)^likeness_queue_depth\{[^}]*queue="caption"[^}]*\} 0""", body);
        return body;
    }

    [Fact]
    public async Task Has_no_scrape_endpoint_unless_asked()
    {
        await using var server = await LikenessServer.StartAsync();
        Assert.Equal(HttpStatusCode.NotFound, (await server.Client.GetAsync("/metrics")).StatusCode);
    }

    private const int DefaultOtlpPort = 4317;

    private static async Task RequestAndStopAsync(Dictionary<string, string?> settings)
    {
        await using var server = await LikenessServer.StartAsync(settings);
        Assert.Equal(HttpStatusCode.OK, (await server.Client.GetAsync("/v2/team")).StatusCode);
    }
}
