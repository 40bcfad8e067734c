using System.Diagnostics;
using System.Diagnostics.Metrics;
using Likeness.Core.Common;
using OpenTelemetry;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Likeness.Hosting;

/// <summary>
/// OpenTelemetry, wired the way the ecosystem does it (as .NET Aspire's service defaults do): traces and metrics from
/// ASP.NET Core, HttpClient, EF Core and the service's own <see cref="LikenessTelemetry"/> source and
/// <see cref="LikenessMetrics"/> meter are always collected; what leaves the process is chosen by configuration —
/// OTLP (traces, metrics and logs) when an endpoint is set, a Prometheus scrape endpoint when asked for.
/// </summary>
public static class Telemetry
{
    /// <summary>The OpenTelemetry SDK's own configuration keys (environment variables), which it reads itself.</summary>
    public const string OtlpEndpointKey = "OTEL_EXPORTER_OTLP_ENDPOINT";
    public const string OtlpProtocolKey = "OTEL_EXPORTER_OTLP_PROTOCOL";
    public const string ServiceNameKey = "OTEL_SERVICE_NAME";

    /// <summary><c>service.name</c> unless OTEL_SERVICE_NAME says otherwise.</summary>
    public const string ServiceName = "likeness";

    /// <summary>Npgsql's own meter (connection pool, command counts); present only on PostgreSQL.</summary>
    private const string NpgsqlMeter = "Npgsql";

    /// <summary>
    /// Adds the providers and, by configuration, the exporters. The service's OTLP settings are handed to the SDK as
    /// the standard keys, so that <c>--otlp-endpoint</c> and OTEL_EXPORTER_OTLP_ENDPOINT behave exactly alike
    /// (with http/protobuf the SDK appends /v1/traces, /v1/metrics and /v1/logs to either).
    /// </summary>
    public static void AddLikenessTelemetry(this IHostApplicationBuilder builder, LikenessOptions options)
    {
        var settings = options.Telemetry;
        if (!string.IsNullOrWhiteSpace(settings.OtlpEndpoint)) builder.Configuration[OtlpEndpointKey] = settings.OtlpEndpoint;
        if (!string.IsNullOrWhiteSpace(settings.OtlpProtocol)) builder.Configuration[OtlpProtocolKey] = settings.OtlpProtocol;

        var otel = builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource =>
            {
                if (string.IsNullOrWhiteSpace(builder.Configuration[ServiceNameKey]))
                    resource.AddService(ServiceName, serviceVersion: typeof(Telemetry).Assembly.GetName().Version?.ToString());
            })
            .WithTracing(tracing => tracing
                .AddSource(LikenessTelemetry.Name)
                .AddAspNetCoreInstrumentation(o => o.Filter = context => !IsHousekeeping(context.Request.Path, settings))
                .AddHttpClientInstrumentation()
                .AddEntityFrameworkCoreInstrumentation()
                .AddProcessor(new SkipUnparentedDatabaseSpans()))
            .WithMetrics(metrics => metrics
                .AddMeter(LikenessTelemetry.Name)
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddMeter(NpgsqlMeter));

        builder.Services.ConfigureOpenTelemetryMeterProvider((services, metrics) => metrics.AddView(OnlyThisHost(services.GetRequiredService<IMeterFactory>())));

        if (IsOtlpConfigured(builder.Configuration))
        {
            // Logs go out too, each with its scopes (the job's and LoRA's ids) as attributes.
            otel.WithLogging(_ => { }, o =>
            {
                o.IncludeScopes = true;
                o.IncludeFormattedMessage = true;
            });
            otel.UseOtlpExporter();
        }
        if (settings.Prometheus) otel.WithMetrics(metrics => metrics.AddPrometheusExporter());
    }

    /// <summary>Maps the scrape endpoint where <c>--prometheus</c> asks for it; elsewhere its path is an unknown route (404).</summary>
    public static void MapLikenessTelemetry(this WebApplication app, LikenessOptions options)
    {
        if (options.Telemetry.Prometheus) app.MapPrometheusScrapingEndpoint(options.Telemetry.PrometheusPath);
    }

    /// <summary>True when an OTLP endpoint is configured, by the service's setting or the SDK's standard variable.</summary>
    public static bool IsOtlpConfigured(IConfiguration configuration) => !string.IsNullOrWhiteSpace(configuration[OtlpEndpointKey]);

    /// <summary>
    /// A MeterProvider listens to meters by name across the whole process; a meter made by another host's
    /// <see cref="IMeterFactory"/> (several hosts share a process in tests, or when embedding the service) is that
    /// host's to report, not this one's.
    /// </summary>
    private static Func<Instrument, MetricStreamConfiguration?> OnlyThisHost(IMeterFactory ours) => instrument =>
        instrument.Meter.Scope is IMeterFactory theirs && !ReferenceEquals(theirs, ours) ? MetricStreamConfiguration.Drop : null;

    /// <summary>Health probes and scrapes arrive every few seconds and say nothing about the service's work.</summary>
    private static bool IsHousekeeping(PathString path, LikenessOptions.TelemetrySettings settings) =>
        path.StartsWithSegments(LikenessHost.HealthPath) || (settings.Prometheus && path.StartsWithSegments(settings.PrometheusPath));

    /// <summary>
    /// A database command that belongs to no request or job (a worker polling its queue, the queue gauges' sample, a
    /// migration) would otherwise be a trace of its own every second. Registered before every exporter, it takes such
    /// spans out of the export as they end. (Not a sampler: a dropped span still propagates an unsampled context, and
    /// where callers share the process, as in tests, their client spans would then unsample the server's traces.)
    /// </summary>
    private sealed class SkipUnparentedDatabaseSpans : BaseProcessor<Activity>
    {
        private const string EntityFrameworkCoreSource = "OpenTelemetry.Instrumentation.EntityFrameworkCore";

        public override void OnEnd(Activity data)
        {
            if (data.ParentSpanId == default && data.Source.Name == EntityFrameworkCoreSource)
                data.ActivityTraceFlags &= ~ActivityTraceFlags.Recorded;
        }
    }
}
