using System.Text.Json;
using System.Text.Json.Serialization;
using Likeness.Adapters;
using Likeness.Api;
using Likeness.Core.Blobs;
using Likeness.Core.Common;
using Likeness.Core.Data;
using Likeness.Core.Generations;
using Likeness.Core.Jobs;
using Likeness.Core.Loras;
using Likeness.Core.Pipeline;
using Likeness.Core.Ports;
using Likeness.Core.Storage;
using Likeness.Core.Teams;
using Likeness.Core.TriggerWords;
using Likeness.Core.Webhooks;
using Likeness.EngineAdapters;
using Likeness.Engine;
using Microsoft.Extensions.Options;
using Scalar.AspNetCore;

namespace Likeness.Hosting;

/// <summary>Builds the service: the same composition for <c>serve</c>, <c>worker</c> and the tests.</summary>
public static class LikenessHost
{
    public const string HealthPath = "/health";

    /// <summary>
    /// Builds the web application from configuration overrides (flags and environment already merged).
    /// <paramref name="extraServices"/> registers more after the service's own (tests add log capture or probes).
    /// </summary>
    public static WebApplication BuildApp(IDictionary<string, string?> overrides, bool withHttp = true, Action<IServiceCollection>? extraServices = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        var options = Configure(builder.Configuration, overrides);
        RequestLimits.Check(options.Limits);

        builder.WebHost.UseUrls(options.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries));
        builder.WebHost.ConfigureKestrel(k => RequestLimits.ConfigureKestrel(k.Limits, options.Limits));
        ConfigureLogging(builder.Logging, options);
        builder.AddLikenessTelemetry(options);

        AddServices(builder.Services, builder.Configuration, options);
        extraServices?.Invoke(builder.Services);

        var app = builder.Build();
        app.UseRequestLimits(options.Limits);
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseDashboard();
        app.UseApiKeys();
        app.MapOpenApi("/openapi/{documentName}.json");
        app.MapScalarApiReference("/docs");
        // A person who opens the server's address lands on the dashboard, not on a 404.
        app.MapGet("/", () => TypedResults.Redirect(Dashboard.Path)).ExcludeFromDescription();
        app.MapGet(HealthPath, () => TypedResults.Ok(new { status = "ok" })).WithTags("Health").ExcludeFromDescription();
        app.MapGet(HealthPath + "/ready", Readiness.CheckAsync).WithTags("Health").ExcludeFromDescription();
        app.MapLikenessTelemetry(options);
        app.MapLoras();
        app.MapImages();
        app.MapTeam();
        app.MapFiles();
        return app;
    }

    /// <summary>
    /// A worker process: the same services and job workers, no API. <c>--queues</c> chooses the queues. With
    /// <c>--prometheus</c> it listens on <c>--urls</c> for scrapes (and health probes) only; otherwise it listens on nothing.
    /// </summary>
    public static IHost BuildWorker(IDictionary<string, string?> overrides)
    {
        overrides = new Dictionary<string, string?>(overrides) { ["Likeness:Role"] = "all" };
        // The same layering as the host's own (appsettings.json, then environment and flags), read ahead to choose the host.
        if (!Configure(new ConfigurationManager(), overrides).Telemetry.Prometheus)
        {
            var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [], ContentRootPath = AppContext.BaseDirectory });
            ComposeWorker(builder, overrides);
            return builder.Build();
        }

        var web = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        var options = ComposeWorker(web, overrides);
        web.WebHost.UseUrls(options.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries));
        var app = web.Build();
        app.MapGet(HealthPath, () => TypedResults.Ok(new { status = "ok" })).ExcludeFromDescription();
        app.MapLikenessTelemetry(options);
        return app;
    }

    private static LikenessOptions ComposeWorker(IHostApplicationBuilder builder, IDictionary<string, string?> overrides)
    {
        var options = Configure(builder.Configuration, overrides);
        ConfigureLogging(builder.Logging, options);
        builder.AddLikenessTelemetry(options);
        AddServices(builder.Services, builder.Configuration, options);
        return options;
    }

    /// <summary>
    /// The one place the settings are layered: appsettings.json in the working directory, then the environment and
    /// flags (already merged into <paramref name="overrides"/>). Returns the options they give.
    /// </summary>
    public static LikenessOptions Configure(IConfigurationBuilder configuration, IDictionary<string, string?> overrides)
    {
        configuration.AddJsonFile(Path.Combine(Directory.GetCurrentDirectory(), "appsettings.json"), optional: true);
        configuration.AddInMemoryCollection(overrides);
        return configuration.Build().GetSection(LikenessOptions.Section).Get<LikenessOptions>() ?? new LikenessOptions();
    }

    private static void ConfigureLogging(ILoggingBuilder logging, LikenessOptions options)
    {
        // Structured: each entry with its properties and those of its scopes (the job's and LoRA's ids, the trace's).
        logging.Configure(o => o.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId | ActivityTrackingOptions.ParentId);
        if (options.LogFormat == LikenessOptions.LogFormats.Json)
            logging.AddJsonConsole(o => { o.IncludeScopes = true; o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ"; o.UseUtcTimestamp = true; });
        else logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
        // The framework's own chatter (every SQL command, every request) only when asked for in configuration.
        // EF Core's errors for a unique-key conflict the code expects and handles are not errors (HandledConflicts).
        logging.Services.Configure<LoggerFilterOptions>(o => o.Rules.Add(new LoggerFilterRule(null, "Microsoft.EntityFrameworkCore", LogLevel.Warning,
            (_, category, level) => HandledConflicts.ShouldLog(category, level))));
        logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        logging.AddFilter("System.Net.Http.HttpClient", LogLevel.Warning);
    }

    public static void AddServices(IServiceCollection services, IConfiguration configuration, LikenessOptions options)
    {
        services.AddOptions<LikenessOptions>().BindConfiguration(LikenessOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<WorkerOptions>().BindConfiguration(WorkerOptions.Section).ValidateDataAnnotations().ValidateOnStart()
            .Configure(w => w.Queues = WorkerQueues(options));
        services.AddProblemDetails(o => o.CustomizeProblemDetails = context =>
        {
            // Framework-made problems (unknown routes, unhandled errors, Kestrel limits) get a stable code too.
            var p = context.ProblemDetails;
            p.Extensions.TryAdd("code", p.Status switch
            {
                404 => "not_found",
                405 => "method_not_allowed",
                413 => "payload_too_large",
                408 => RequestLimits.RequestTimeout,
                414 => RequestLimits.UriTooLong,
                431 => RequestLimits.HeadersTooLarge,
                400 => "bad_request",
                _ => "internal_error",
            });
            p.Extensions.TryAdd("traceId", System.Diagnostics.Activity.Current?.Id ?? context.HttpContext.TraceIdentifier);
            if (p.Status >= 500) p.Detail = "An unexpected error occurred; it has been logged.";
        });
        services.AddLikenessOpenApi();
        services.AddOptions<LoraEventOptions>().BindConfiguration(LoraEventOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.ConfigureHttpJsonOptions(o => ApiJson.Configure(o.SerializerOptions));

        services.AddSingleton(TimeProvider.System);
        services.AddMetrics();
        services.AddSingleton<LikenessMetrics>();
        services.AddLikenessDatabase(options.DatabaseSetting);
        // Made now, so that an unusable --blobs stops the start; the container still owns (and disposes) it.
        var blobs = CreateBlobStore(options.BlobsSetting);
        services.AddSingleton<IBlobStore>(_ => blobs);
        services.AddSingleton(new PipelineOptions
        {
            WorkFolder = options.WorkFolder,
            StagingFolder = options.StagingFolder,
            CheckpointEvery = options.Training.CheckpointEvery,
        });
        services.AddSingleton<JobSignals>();
        if (!DatabaseSetup.IsSqlite(options.DatabaseSetting))
        {
            services.AddSingleton(sp => ActivatorUtilities.CreateInstance<PostgresJobNotifications>(sp, options.DatabaseSetting));
            services.AddHostedService(sp => sp.GetRequiredService<PostgresJobNotifications>());
        }
        services.AddSingleton<FileLinks>();
        services.AddSingleton<ApiKeyCache>();
        services.AddSingleton<TriggerWordGenerator>();
        services.AddCaptioner(options);
        services.AddScoped<LoraLifecycle>();
        services.AddScoped<LoraFiles>();
        services.AddScoped<LoraCreation>();
        services.AddOptions<SweeperOptions>().BindConfiguration(SweeperOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddScoped<OrphanSweeper>();
        services.AddScoped<GenerationCreation>();
        services.AddScoped<Idempotency>();
        services.AddScoped<IdempotencyScope>();
        services.AddLikenessWebhooks(configuration);
        services.AddLocalEngine(options.EnginePreset, options.Models, options.EngineThreads, options.EnginePrecision, options.EngineDevice);

        // Bootstrap first: hosted services start in order, and workers need the migrated database.
        services.AddHostedService<Bootstrap>();
        services.AddHostedService(sp => ActivatorUtilities.CreateInstance<QueueGauges>(sp, options.Telemetry.QueueSampleInterval));
        services.AddHostedService<OrphanSweepLoop>();
        services.AddKeyedScoped<IJobHandler, CaptionJobHandler>(JobQueues.Caption);
        services.AddKeyedScoped<IJobHandler, TrainingJobHandler>(JobQueues.Training);
        services.AddKeyedScoped<IJobHandler, GenerationJobHandler>(JobQueues.Generation);
        services.AddKeyedScoped<IJobHandler, WebhookJobHandler>(JobQueues.Webhook);

        var queues = WorkerQueues(options);
        if (queues.Contains(JobQueues.Training) || queues.Contains(JobQueues.Generation)) CheckEngineSettings(options);
        foreach (var queue in queues)
        {
            var slots = configuration.GetValue<int?>($"{WorkerOptions.Section}:Concurrency:{queue}") ?? new WorkerOptions().Concurrency[queue];
            for (var i = 0; i < slots; i++)
            {
                services.AddSingleton<IHostedService>(sp => ActivatorUtilities.CreateInstance<JobWorker>(sp, queue));
            }
        }
    }

    /// <summary>The API role runs no workers; <c>all</c> runs the queues named in --queues (default: every queue).</summary>
    private static string[] WorkerQueues(LikenessOptions options)
    {
        if (options.Role == "api") return [];
        if (string.IsNullOrWhiteSpace(options.Queues)) return JobQueues.All;
        var queues = options.Queues.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var unknown = queues.Except(JobQueues.All).ToArray();
        if (unknown.Length > 0) throw new OptionsValidationException("Queues", typeof(LikenessOptions),
            [$"Unknown queue(s) {string.Join(", ", unknown)}; the queues are {string.Join(", ", JobQueues.All)}."]);
        return queues;
    }

    /// <summary>
    /// A process that will run the engine fails at start, not at its first job, when a preset's files are missing
    /// (every missing one named: a full-size preset's in --models, flux-tiny's beside the binary or in --models) or a
    /// pinned CUDA device is not there.
    /// </summary>
    private static void CheckEngineSettings(LikenessOptions options)
    {
        try
        {
            if (!string.Equals(options.EngineDevice, "auto", StringComparison.OrdinalIgnoreCase)) FluxEngine.DeviceFor(options.EngineDevice);
            var preset = FluxPreset.ByName(options.EnginePreset);
            if (!preset.IsTiny) ModelFolder.Locate(preset, options.Models);
            else if (preset.Pretrained) TinyWeightsFolder.Locate(options.Models ?? FluxPreset.TinyWeights);
        }
        catch (InvalidOperationException e)
        {
            throw new OptionsValidationException("Engine", typeof(LikenessOptions), [e.Message]);
        }
    }

    private static IBlobStore CreateBlobStore(string setting)
    {
        if (setting.StartsWith("file:", StringComparison.OrdinalIgnoreCase)) return new FileBlobStore(setting["file:".Length..]);
        if (setting.StartsWith("s3://", StringComparison.OrdinalIgnoreCase)) return S3BlobStore.FromSetting(setting);
        throw new OptionsValidationException("Blobs", typeof(LikenessOptions),
            [$"Unsupported --blobs '{setting}': use file:DIR or s3://BUCKET?endpoint=URL&pathStyle=true&region=R."]);
    }
}
