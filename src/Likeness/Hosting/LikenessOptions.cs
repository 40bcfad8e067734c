using System.ComponentModel.DataAnnotations;

namespace Likeness.Hosting;

/// <summary>The settings of DESIGN.md's "Configuration" table (section <c>Likeness</c>), plus tuning knobs.</summary>
public sealed class LikenessOptions
{
    public const string Section = "Likeness";

    /// <summary>Local folder: default SQLite file, default blob folder, staging, work folders, default-api-key.</summary>
    [Required] public string Data { get; set; } = "./data";
    /// <summary><c>sqlite:PATH</c> or an Npgsql connection string; default <c>sqlite:&lt;data&gt;/likeness.db</c>.</summary>
    public string? Database { get; set; }
    /// <summary><c>file:DIR</c>; default <c>file:&lt;data&gt;/blobs</c>.</summary>
    public string? Blobs { get; set; }
    [Required] public string Urls { get; set; } = "http://127.0.0.1:8080";
    public string? PublicUrl { get; set; }
    [RegularExpression("^(api|all)$")] public string Role { get; set; } = "all";
    public string? Queues { get; set; }
    public bool AllowPrivateWebhooks { get; set; }
    [RegularExpression("^(flux-tiny|flux-dev|flux-schnell)$")] public string EnginePreset { get; set; } = "flux-tiny";
    public string? Models { get; set; }
    /// <summary>Engine weights: auto (bf16 on CUDA, fp32 on the CPU), fp32 or bf16.</summary>
    [RegularExpression("^(auto|fp32|bf16)$")] public string EnginePrecision { get; set; } = "auto";
    /// <summary>auto (CUDA when libtorch finds a GPU, else the CPU), cpu, cuda or cuda:N.</summary>
    [RegularExpression(@"^(auto|cpu|cuda(:\d+)?)$")] public string EngineDevice { get; set; } = "auto";
    /// <summary>CPU threads for each training and generation (libtorch intra-op); unset: <see cref="Likeness.Engine.EngineThreads.DefaultFor"/>.</summary>
    [Range(1, 1024)] public int? EngineThreads { get; set; }
    /// <summary><c>local</c>, <c>openai</c> or <c>florence2</c> (checked at start by <see cref="Likeness.Adapters.Captioners"/>, which names what is missing).</summary>
    public string Captioner { get; set; } = "local";
    /// <summary>The OpenAI-compatible base URL, ending in <c>/v1</c>.</summary>
    public string? CaptionerEndpoint { get; set; }
    public string? CaptionerModel { get; set; }
    /// <summary>Optional (local servers need none); only from the environment or appsettings, never logged.</summary>
    public string? CaptionerApiKey { get; set; }
    /// <summary><c>none</c>, or <c>local</c>: a photo the endpoint cannot caption is captioned locally.</summary>
    public string CaptionerFallback { get; set; } = "none";
    /// <summary>Photos captioned at once by a remote captioner, or by Florence-2 in this process (which then splits the CPU threads among them).</summary>
    public int CaptionerConcurrency { get; set; } = 4;
    /// <summary><c>florence2</c>: the model folder, as its Hugging Face repository downloads (microsoft/Florence-2-base or -large).</summary>
    public string? CaptionerModels { get; set; }
    /// <summary>Console log lines: <c>simple</c> (one line each) or <c>json</c> (one object each, with every scope's ids as fields).</summary>
    [RegularExpression("^(simple|json)$")] public string LogFormat { get; set; } = LogFormats.Simple;

    public TrainingSettings Training { get; set; } = new();
    public CaptionerCallSettings CaptionerCalls { get; set; } = new();
    public GenerationSettings Generation { get; set; } = new();
    public FileLinkSettings Files { get; set; } = new();
    public BootstrapSettings Bootstrap { get; set; } = new();
    public RequestLimitSettings Limits { get; set; } = new();
    public TelemetrySettings Telemetry { get; set; } = new();

    public string DataFolder => Path.GetFullPath(Data);
    public string DatabaseSetting => Database ?? "sqlite:" + Path.Combine(DataFolder, "likeness.db");
    public string BlobsSetting => Blobs ?? "file:" + Path.Combine(DataFolder, "blobs");
    public string StagingFolder => Path.Combine(DataFolder, "staging");
    public string WorkFolder => Path.Combine(DataFolder, "work");
    public string PublicBaseUrl => (PublicUrl ?? Urls.Split(';', StringSplitOptions.RemoveEmptyEntries)[0]).TrimEnd('/');

    public sealed class TrainingSettings
    {
        /// <summary>
        /// The smallest accepted <c>steps</c>. The public contract is 500–3000; only test suites lower it
        /// (LIKENESS_TRAINING_MIN_STEPS) so that they can train for real in seconds.
        /// </summary>
        [Range(1, 3000)] public int MinSteps { get; set; } = 500;
        [Range(1, 100000)] public int CheckpointEvery { get; set; } = 100;
    }

    /// <summary>How the remote captioner treats its endpoint (section <c>Likeness:CaptionerCalls</c>).</summary>
    public sealed class CaptionerCallSettings
    {
        /// <summary>One HTTP attempt; a slow vision model on a CPU can take tens of seconds per photo.</summary>
        public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(120);
        /// <summary>Retries of one call on 429, 5xx, timeouts and connection errors, after the first attempt.</summary>
        [Range(0, 20)] public int Retries { get; set; } = 4;
        /// <summary>The first retry's wait, doubled each time (with jitter) unless the endpoint sends Retry-After.</summary>
        public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(2);
        /// <summary>Answers asked for, per photo, when they come back unusable (empty, refusal, too long…).</summary>
        [Range(1, 20)] public int AnswerAttempts { get; set; } = 3;
    }

    public sealed class GenerationSettings
    {
        /// <summary>How long <c>POST /v2/images/generate</c> waits for the images before answering 202.</summary>
        public TimeSpan SyncWait { get; set; } = TimeSpan.FromSeconds(60);
    }

    public sealed class FileLinkSettings
    {
        /// <summary>How long a signed image link works.</summary>
        public TimeSpan LinkLifetime { get; set; } = TimeSpan.FromHours(24);
    }

    public static class LogFormats
    {
        public const string Simple = "simple";
        public const string Json = "json";
    }

    /// <summary>What leaves the process of the traces, metrics and logs always collected (section <c>Likeness:Telemetry</c>).</summary>
    public sealed class TelemetrySettings
    {
        /// <summary>
        /// An OTLP collector (<c>http://collector:4317</c> for grpc, <c>http://collector:4318</c> for http/protobuf): traces,
        /// metrics and logs are exported there. Unset: OTEL_EXPORTER_OTLP_ENDPOINT, and without that no OTLP export at all.
        /// </summary>
        public string? OtlpEndpoint { get; set; }
        /// <summary><c>grpc</c> or <c>http/protobuf</c>; unset: OTEL_EXPORTER_OTLP_PROTOCOL, else the SDK's default (grpc).</summary>
        [RegularExpression("^(grpc|http/protobuf)$")] public string? OtlpProtocol { get; set; }
        /// <summary>Answer Prometheus scrapes at <see cref="PrometheusPath"/> on <see cref="LikenessOptions.Urls"/> (serve's, or a worker's then).</summary>
        public bool Prometheus { get; set; }
        [RegularExpression("^/.*")] public string PrometheusPath { get; set; } = "/metrics";
        /// <summary>How often the job table is sampled for the queue depth and age gauges (only while something listens).</summary>
        [Range(typeof(TimeSpan), "00:00:00.100", "01:00:00")] public TimeSpan QueueSampleInterval { get; set; } = TimeSpan.FromSeconds(15);
    }

    public sealed class BootstrapSettings
    {
        /// <summary>Credits of the team <c>default</c> made on the embedded default's first start.</summary>
        public long DefaultTeamCredits { get; set; } = 10_000;
    }

    /// <summary>
    /// Request limits (section <c>Likeness:Limits</c>). The URL and header limits are enforced by the service itself so that
    /// a refusal is problem+json; Kestrel's own, which answer with an empty body, sit above them (see RequestLimits).
    /// </summary>
    public sealed class RequestLimitSettings
    {
        /// <summary>The request target (path and query) in bytes; longer is 414 <c>uri_too_long</c>.</summary>
        [Range(1024, 32 * 1024)] public int MaxUrlBytes { get; set; } = 8 * 1024;
        /// <summary>All header names and values together; more is 431 <c>headers_too_large</c>.</summary>
        [Range(4 * 1024, 64 * 1024)] public int MaxHeaderBytes { get; set; } = 32 * 1024;
        /// <summary>Header fields in one request; more is 431 <c>headers_too_large</c>.</summary>
        [Range(10, 200)] public int MaxHeaderCount { get; set; } = 100;
        /// <summary>
        /// The slowest a request body may arrive, in bytes per second, averaged once <see cref="MinUploadRateGrace"/> has
        /// passed; slower (a stalled upload) is cut off with 408 <c>request_timeout</c>. 0 turns the check off.
        /// </summary>
        [Range(0, 100 * 1024 * 1024)] public int MinUploadBytesPerSecond { get; set; } = 8 * 1024;
        /// <summary>How long a body may arrive slower than the minimum rate before the rate counts (TCP slow start, a pause).</summary>
        [Range(typeof(TimeSpan), "00:00:01", "00:10:00")] public TimeSpan MinUploadRateGrace { get; set; } = TimeSpan.FromSeconds(10);
    }
}
