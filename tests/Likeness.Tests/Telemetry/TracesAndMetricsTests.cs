using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Likeness.Core.Common;
using Likeness.Core.Data;
using Likeness.Hosting;
using Likeness.Tests.Infrastructure;
using Names = Likeness.Core.Common.LikenessMetrics.Names;
using Labels = Likeness.Core.Common.LikenessMetrics.Labels;

namespace Likeness.Tests.Telemetry;

/// <summary>One LoRA trained for real (flux-tiny, a few steps) and one generation of two images, seen through OpenTelemetry.</summary>
public sealed class TrainedLoraTelemetry : IAsyncLifetime
{
    public const int Steps = LikenessServer.TestMinSteps;
    public const int Images = 2;

    public TelemetryCapture Capture { get; } = new();
    public LogCapture Logs { get; } = new();
    public LikenessServer Server { get; private set; } = null!;
    public string LoraId { get; private set; } = "";
    public string GenerationId { get; private set; } = "";
    public Dictionary<string, OpenTelemetry.Metrics.MetricSnapshot> Metrics { get; private set; } = [];

    public async Task InitializeAsync()
    {
        Server = await LikenessServer.StartAsync(
            new Dictionary<string, string?> { ["Logging:LogLevel:Likeness"] = "Information", [Setting.Prometheus.Key] = "true" },
            services: s => { Capture.AddTo(s); Logs.AddTo(s); });
        var created = await Server.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, 910)));
        Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
        LoraId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        var (lora, _) = await Server.WaitForLoraAsync(LoraId, l => l.GetProperty("status").GetString() is "READY" or "FAILED");
        Assert.Equal("READY", lora.GetProperty("status").GetString());

        var generate = await Server.Client.PostAsJsonAsync("/v2/images/generate", new
        {
            model = "flux-lora", prompt = "a portrait",
            fluxLoraParams = new { loraId = LoraId, num_outputs = Images, num_inference_steps = 4, seed = 5 },
        });
        var generation = await generate.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(generate.StatusCode == HttpStatusCode.OK, generation.ToString());
        Assert.Equal("COMPLETED", generation.GetProperty("status").GetString());
        GenerationId = generation.GetProperty("id").GetString()!;
        Metrics = Capture.CollectMetrics(Server.App.Services);
    }

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

public sealed class TracesAndMetricsTests(TrainedLoraTelemetry fixture) : IClassFixture<TrainedLoraTelemetry>
{
    [Fact]
    public async Task One_trace_follows_a_lora_from_its_post_through_its_caption_and_training_jobs()
    {
        var spans = fixture.Capture.Spans;
        var caption = JobSpan(spans, JobQueues.Caption, LikenessTelemetry.Tags.LoraId, fixture.LoraId);
        var training = JobSpan(spans, JobQueues.Training, LikenessTelemetry.Tags.LoraId, fixture.LoraId);
        var post = ServerSpan(spans, caption.TraceId, "POST", "/v2/loras");

        Assert.Equal(post.SpanId, caption.ParentSpanId);
        Assert.Equal(caption.TraceId, training.TraceId);
        Assert.Equal(caption.SpanId, training.ParentSpanId);
        Assert.Equal(fixture.LoraId, post.GetTagItem(LikenessTelemetry.Tags.LoraId));
        Assert.Equal(ActivityKind.Consumer, training.Kind);
        Assert.Equal(LikenessMetrics.Outcomes.Completed, training.GetTagItem(LikenessTelemetry.Tags.JobOutcome));
        // The work inside the jobs is in the trace too (EF Core commands).
        Assert.Contains(spans, s => s.TraceId == caption.TraceId && s.ParentSpanId == training.SpanId && s.Kind == ActivityKind.Client);
        // Lease renewals and progress writes run beside the jobs, outside their spans: none of the trace's commands is one.
        var statements = spans.Where(s => s.TraceId == caption.TraceId).Select(s => s.GetTagItem("db.statement") as string).OfType<string>().ToList();
        Assert.Contains(statements, s => s.Contains("UPDATE \"jobs\""));
        Assert.DoesNotContain(statements, s => Regex.IsMatch(s, """SET "LeaseExpiresAt" = @\w+\s+WHERE"""));
        Assert.DoesNotContain(statements, s => s.Contains("\"Loss\" = @"));
        // Commands outside any request or job (queue polls, migrations) are no traces of their own.
        Assert.DoesNotContain(spans, s => s.Kind == ActivityKind.Client && s.ParentSpanId == default && s.Source.Name.Contains("EntityFrameworkCore"));

        // A generation's job continues the trace of its own request.
        var generation = JobSpan(spans, JobQueues.Generation, LikenessTelemetry.Tags.GenerationId, fixture.GenerationId);
        Assert.Equal(ServerSpan(spans, generation.TraceId, "POST", "/v2/images/generate").SpanId, generation.ParentSpanId);

        // The job rows keep the context they were enqueued under.
        var rows = await fixture.Server.WithDb(db => Task.FromResult(db.Jobs.Where(j => j.SubjectId == fixture.LoraId).ToList()));
        Assert.All(rows, j => Assert.Contains(caption.TraceId.ToHexString(), j.TraceParent));
    }

    [Fact]
    public void A_jobs_log_lines_carry_the_trace_and_span_ids_of_its_span()
    {
        var caption = JobSpan(fixture.Capture.Spans, JobQueues.Caption, LikenessTelemetry.Tags.LoraId, fixture.LoraId);
        var claimed = fixture.Logs.Entries.Single(e => e.EventId.Name == nameof(LifecycleLog.JobClaimed)
            && Equals(e["LoraId"], fixture.LoraId) && Equals(e["Queue"], JobQueues.Caption));
        Assert.Equal(caption.TraceId.ToHexString(), claimed.ScopeProperties["TraceId"]?.ToString());
        Assert.Equal(caption.SpanId.ToHexString(), claimed.ScopeProperties["SpanId"]?.ToString());
    }

    [Fact]
    public void Counts_the_jobs_credits_images_and_training_steps_of_one_lora_and_one_generation()
    {
        var m = fixture.Metrics;
        foreach (var queue in new[] { JobQueues.Caption, JobQueues.Training, JobQueues.Generation })
        {
            Assert.Equal(1, m.Sum(Names.JobsClaimed, Labels.Queue, queue));
            Assert.Equal(1, m.Sum(Names.JobsCompleted, Labels.Queue, queue));
            Assert.Equal(1, m.HistogramCount(Names.JobDuration, Labels.Queue, queue));
        }
        Assert.Equal(0, m.Sum(Names.JobsFailed));
        Assert.Equal(2, m.Sum(Names.CreditsCharged, Labels.Reason, LedgerReasons.LoraCreate));
        Assert.Equal(255, m.Sum(Names.CreditsCharged, Labels.Reason, LedgerReasons.LoraTraining));
        Assert.Equal(2 * TrainedLoraTelemetry.Images, m.Sum(Names.CreditsCharged, Labels.Reason, LedgerReasons.Generation));
        Assert.Equal(0, m.Sum(Names.CreditsRefunded));
        Assert.Equal(TrainedLoraTelemetry.Images, m.Sum(Names.ImagesGenerated));
        // Every step but the first, whose report also covers loading and caching.
        Assert.Equal(TrainedLoraTelemetry.Steps - 1, m.HistogramCount(Names.TrainingStepDuration));
        Assert.True(m.Of(Names.TrainingStepDuration).Single().Point.GetHistogramSum() > 0);
        // The framework's own instruments are collected beside the service's.
        Assert.Contains("http.server.request.duration", m.Keys);
    }

    [Fact]
    public async Task A_scrape_shows_the_same_values_under_their_prometheus_names()
    {
        using var scraper = fixture.Server.CreateClient(apiKey: null);
        var body = await scraper.GetStringAsync("/metrics");
        Assert.Matches("""(?m)^likeness_jobs_completed_total\{[^}]*queue="training"[^}]*\} 1\b""", body);
        Assert.Matches("""(?m)^likeness_credits_charged_total\{[^}]*reason="lora_training"[^}]*\} 255\b""", body);
        Assert.Matches("""(?m)^likeness_images_generated_total\{[^}]*\} 2\b""", body);
        Assert.Matches($$"""(?m)^likeness_training_step_duration_seconds_count\{[^}]*\} {{TrainedLoraTelemetry.Steps - 1}}\b""", body);
        Assert.Matches("""(?m)^likeness_job_duration_seconds_bucket\{[^}]*queue="caption".*""", body);
    }

    private static Activity JobSpan(IReadOnlyList<Activity> spans, string queue, string subjectTag, string subject)
    {
        var matches = spans.Where(s => s.Source.Name == LikenessTelemetry.Name
            && Equals(s.GetTagItem(LikenessTelemetry.Tags.MessagingDestination), queue)
            && Equals(s.GetTagItem(subjectTag), subject)).ToList();
        Assert.True(matches.Count == 1, $"expected one {queue} span for {subject}, got {matches.Count}; the service's spans: "
            + string.Join(", ", spans.Where(s => s.Source.Name == LikenessTelemetry.Name).Select(s => $"{s.DisplayName} {string.Join(" ", s.Tags.Select(t => t.Key + "=" + t.Value))}")));
        return matches[0];
    }

    private static Activity ServerSpan(IReadOnlyList<Activity> spans, ActivityTraceId trace, string method, string route)
    {
        var matches = spans.Where(s => s.TraceId == trace && s.Kind == ActivityKind.Server
            && Equals(s.GetTagItem("http.request.method"), method) && (s.GetTagItem("http.route") as string)?.TrimEnd('/') == route).ToList();
        Assert.True(matches.Count == 1, $"expected one {method} {route} server span in trace {trace}, got {matches.Count}: "
            + string.Join(", ", spans.Where(s => s.TraceId == trace).Select(s => $"{s.Kind} {s.DisplayName}")));
        return matches[0];
    }
}
