namespace Likeness.Hosting;

/// <summary>
/// One row of DESIGN.md's configuration table: a flag, its environment variable and its configuration key.
/// Flags win over the environment, the environment over appsettings.json.
/// </summary>
public sealed record Setting(string Flag, string Environment, string Key)
{
    public static readonly Setting Data = new("--data", "LIKENESS_DATA", "Likeness:Data");
    public static readonly Setting Database = new("--database", "LIKENESS_DATABASE", "Likeness:Database");
    public static readonly Setting Blobs = new("--blobs", "LIKENESS_BLOBS", "Likeness:Blobs");
    public static readonly Setting Urls = new("--urls", "LIKENESS_URLS", "Likeness:Urls");
    public static readonly Setting PublicUrl = new("--public-url", "LIKENESS_PUBLIC_URL", "Likeness:PublicUrl");
    public static readonly Setting Role = new("--role", "LIKENESS_ROLE", "Likeness:Role");
    public static readonly Setting Queues = new("--queues", "LIKENESS_QUEUES", "Likeness:Queues");
    public static readonly Setting AllowPrivateWebhooks = new("--allow-private-webhooks", "LIKENESS_ALLOW_PRIVATE_WEBHOOKS", "Likeness:AllowPrivateWebhooks");
    public static readonly Setting EnginePreset = new("--engine-preset", "LIKENESS_ENGINE_PRESET", "Likeness:EnginePreset");
    public static readonly Setting Models = new("--models", "LIKENESS_MODELS", "Likeness:Models");
    public static readonly Setting EnginePrecision = new("--engine-precision", "LIKENESS_ENGINE_PRECISION", "Likeness:EnginePrecision");
    public static readonly Setting EngineDevice = new("--engine-device", "LIKENESS_ENGINE_DEVICE", "Likeness:EngineDevice");
    public static readonly Setting Captioner = new("--captioner", "LIKENESS_CAPTIONER", "Likeness:Captioner");
    public static readonly Setting CaptionerEndpoint = new("--captioner-endpoint", "LIKENESS_CAPTIONER_ENDPOINT", "Likeness:CaptionerEndpoint");
    public static readonly Setting CaptionerModel = new("--captioner-model", "LIKENESS_CAPTIONER_MODEL", "Likeness:CaptionerModel");
    public static readonly Setting CaptionerFallback = new("--captioner-fallback", "LIKENESS_CAPTIONER_FALLBACK", "Likeness:CaptionerFallback");
    public static readonly Setting CaptionerConcurrency = new("--captioner-concurrency", "LIKENESS_CAPTIONER_CONCURRENCY", "Likeness:CaptionerConcurrency");
    public static readonly Setting CaptionerModels = new("--captioner-models", "LIKENESS_CAPTIONER_MODELS", "Likeness:CaptionerModels");
    public static readonly Setting LogFormat = new("--log-format", "LIKENESS_LOG_FORMAT", "Likeness:LogFormat");
    public static readonly Setting OtlpEndpoint = new("--otlp-endpoint", "LIKENESS_OTLP_ENDPOINT", "Likeness:Telemetry:OtlpEndpoint");
    public static readonly Setting OtlpProtocol = new("--otlp-protocol", "LIKENESS_OTLP_PROTOCOL", "Likeness:Telemetry:OtlpProtocol");
    public static readonly Setting Prometheus = new("--prometheus", "LIKENESS_PROMETHEUS", "Likeness:Telemetry:Prometheus");
    /// <summary>No flag: a secret does not belong on a command line, where any process listing shows it.</summary>
    public static readonly Setting CaptionerApiKey = new("", "LIKENESS_CAPTIONER_API_KEY", "Likeness:CaptionerApiKey");
    /// <summary>No flag: only test suites lower the training step floor.</summary>
    public static readonly Setting TrainingMinSteps = new("", "LIKENESS_TRAINING_MIN_STEPS", "Likeness:Training:MinSteps");

    public static readonly Setting[] All = [Data, Database, Blobs, Urls, PublicUrl, Role, Queues, AllowPrivateWebhooks, EnginePreset, Models, EnginePrecision, EngineDevice,
        Captioner, CaptionerEndpoint, CaptionerModel, CaptionerFallback, CaptionerConcurrency, CaptionerModels, CaptionerApiKey, TrainingMinSteps,
        LogFormat, OtlpEndpoint, OtlpProtocol, Prometheus];

    /// <summary>The environment's values, then the flags' on top, as configuration overrides.</summary>
    public static Dictionary<string, string?> Overrides(IReadOnlyDictionary<Setting, string?> flags)
    {
        var values = new Dictionary<string, string?>();
        foreach (var s in All)
        {
            var env = System.Environment.GetEnvironmentVariable(s.Environment);
            if (!string.IsNullOrEmpty(env)) values[s.Key] = env;
        }
        foreach (var (s, v) in flags)
            if (v is not null) values[s.Key] = v;
        return values;
    }
}
