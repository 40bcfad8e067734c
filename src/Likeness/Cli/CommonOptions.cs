using System.CommandLine;
using Likeness.Hosting;

namespace Likeness.Cli;

/// <summary>The options every verb takes (DESIGN.md's configuration table), declared once on the root as recursive.</summary>
internal static class CommonOptions
{
    public static readonly Option<string?> Data = Make(Setting.Data, "Local folder: default SQLite file, blobs, default-api-key (default ./data).");
    public static readonly Option<string?> Database = Make(Setting.Database, "sqlite:PATH or an Npgsql connection string (default sqlite:<data>/likeness.db).");
    public static readonly Option<string?> Blobs = Make(Setting.Blobs, "file:DIR (default file:<data>/blobs).");
    public static readonly Option<string?> Urls = Make(Setting.Urls, "Where serve listens, and a worker with --prometheus (default http://127.0.0.1:8080).");
    public static readonly Option<string?> PublicUrl = Make(Setting.PublicUrl, "Base of absolute links (default: the first of --urls).");
    public static readonly Option<string?> Role = Make(Setting.Role, "api | all: serve with or without in-process workers (default all).");
    public static readonly Option<string?> Queues = Make(Setting.Queues, "Queues to work on: caption,training,generation,webhook (default all).");
    public static readonly Option<bool> AllowPrivateWebhooks = new(Setting.AllowPrivateWebhooks.Flag)
    {
        Description = "Allow http and loopback/private webhook targets (development and tests).",
        Recursive = true,
    };
    public static readonly Option<string?> EnginePreset = Make(Setting.EnginePreset, "flux-tiny (default), flux-dev, flux-schnell.");
    public static readonly Option<string?> Models = Make(Setting.Models, "Folder with the weights of flux-dev / flux-schnell.");
    public static readonly Option<string?> EnginePrecision = Make(Setting.EnginePrecision, "auto (default: bf16 on CUDA, fp32 on CPU), fp32 or bf16.");
    public static readonly Option<string?> EngineDevice = Make(Setting.EngineDevice, "auto (default: CUDA when found, else CPU), cpu, cuda or cuda:N.");
    public static readonly Option<string?> Captioner = Make(Setting.Captioner, "local (default: offline), openai (any OpenAI-compatible vision endpoint) or florence2 (Florence-2 in-process, from --captioner-models).");
    public static readonly Option<string?> CaptionerEndpoint = Make(Setting.CaptionerEndpoint, "openai: the endpoint's base URL, ending in /v1 (key from LIKENESS_CAPTIONER_API_KEY).");
    public static readonly Option<string?> CaptionerModel = Make(Setting.CaptionerModel, "openai: the vision model's name.");
    public static readonly Option<string?> CaptionerFallback = Make(Setting.CaptionerFallback, "none (default: the LoRA fails) or local: caption a photo locally when the endpoint stays down.");
    public static readonly Option<string?> CaptionerConcurrency = Make(Setting.CaptionerConcurrency, "openai, florence2: photos captioned at once (default 4).");
    public static readonly Option<string?> CaptionerModels = Make(Setting.CaptionerModels, "florence2: the model folder (microsoft/Florence-2-base or -large as downloaded).");
    public static readonly Option<string?> LogFormat = Make(Setting.LogFormat, "Console logs: simple (default: one line each) or json (with the job's and LoRA's ids as fields).");
    public static readonly Option<string?> OtlpEndpoint = Make(Setting.OtlpEndpoint, "Export traces, metrics and logs to this OTLP collector (default: OTEL_EXPORTER_OTLP_ENDPOINT, else none).");
    public static readonly Option<string?> OtlpProtocol = Make(Setting.OtlpProtocol, "grpc (default) or http/protobuf.");
    public static readonly Option<bool> Prometheus = new(Setting.Prometheus.Flag)
    {
        Description = "Answer Prometheus scrapes at /metrics (a worker then listens on --urls for them).",
        Recursive = true,
    };

    public static IEnumerable<Option> All => [Data, Database, Blobs, Urls, PublicUrl, Role, Queues, AllowPrivateWebhooks, EnginePreset, Models, EnginePrecision, EngineDevice,
        Captioner, CaptionerEndpoint, CaptionerModel, CaptionerFallback, CaptionerConcurrency, CaptionerModels, LogFormat, OtlpEndpoint, OtlpProtocol, Prometheus];

    private static Option<string?> Make(Setting s, string description) => new(s.Flag) { Description = description, Recursive = true };

    /// <summary>Flags over environment; appsettings.json lies beneath both.</summary>
    public static Dictionary<string, string?> Overrides(ParseResult result) => Setting.Overrides(new Dictionary<Setting, string?>
    {
        [Setting.Data] = result.GetValue(Data),
        [Setting.Database] = result.GetValue(Database),
        [Setting.Blobs] = result.GetValue(Blobs),
        [Setting.Urls] = result.GetValue(Urls),
        [Setting.PublicUrl] = result.GetValue(PublicUrl),
        [Setting.Role] = result.GetValue(Role),
        [Setting.Queues] = result.GetValue(Queues),
        [Setting.AllowPrivateWebhooks] = result.GetValue(AllowPrivateWebhooks) ? "true" : null,
        [Setting.EnginePreset] = result.GetValue(EnginePreset),
        [Setting.Models] = result.GetValue(Models),
        [Setting.EnginePrecision] = result.GetValue(EnginePrecision),
        [Setting.EngineDevice] = result.GetValue(EngineDevice),
        [Setting.Captioner] = result.GetValue(Captioner),
        [Setting.CaptionerEndpoint] = result.GetValue(CaptionerEndpoint),
        [Setting.CaptionerModel] = result.GetValue(CaptionerModel),
        [Setting.CaptionerFallback] = result.GetValue(CaptionerFallback),
        [Setting.CaptionerConcurrency] = result.GetValue(CaptionerConcurrency),
        [Setting.CaptionerModels] = result.GetValue(CaptionerModels),
        [Setting.LogFormat] = result.GetValue(LogFormat),
        [Setting.OtlpEndpoint] = result.GetValue(OtlpEndpoint),
        [Setting.OtlpProtocol] = result.GetValue(OtlpProtocol),
        [Setting.Prometheus] = result.GetValue(Prometheus) ? "true" : null,
    });
}
