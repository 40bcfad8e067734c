using System.ClientModel;
using System.ClientModel.Primitives;
using Likeness.Core.Captioning;
using Likeness.Core.Ports;
using Likeness.Engine.Captioning;
using Likeness.Hosting;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.Options;
using OpenAI;
using OpenAI.Chat;
using Polly;

namespace Likeness.Adapters;

/// <summary>The captioning port chosen by <c>--captioner</c>, checked before anything starts.</summary>
public static class Captioners
{
    private const string HttpClientName = "captioner";

    public static IServiceCollection AddCaptioner(this IServiceCollection services, LikenessOptions options)
    {
        Check(options);
        services.AddSingleton<LocalCaptioner>();
        if (options.Captioner == CaptionSources.Local)
        {
            services.AddSingleton<ICaptioner>(sp => sp.GetRequiredService<LocalCaptioner>());
            return services;
        }
        if (options.Captioner == CaptionSources.Florence2)
        {
            services.AddSingleton(sp => new Florence2Captioner(options.CaptionerModels!, options.CaptionerConcurrency, options.EngineThreads,
                sp.GetRequiredService<ILogger<Florence2Captioner>>()));
            services.AddSingleton<ICaptioner>(sp => options.CaptionerFallback == CaptionSources.Local
                ? new FallbackCaptioner(sp.GetRequiredService<Florence2Captioner>(), sp.GetRequiredService<LocalCaptioner>(),
                    sp.GetRequiredService<ILogger<FallbackCaptioner>>())
                : sp.GetRequiredService<Florence2Captioner>());
            return services;
        }

        var calls = options.CaptionerCalls;
        services.AddHttpClient(HttpClientName, c => c.Timeout = Timeout.InfiniteTimeSpan)
            .AddResilienceHandler(HttpClientName, pipeline =>
            {
                // Outermost first: each retry gets its own timeout. 429 and 5xx, timeouts and connection errors are
                // retried; a Retry-After from the endpoint replaces the exponential wait.
                if (calls.Retries > 0)
                    pipeline.AddRetry(new HttpRetryStrategyOptions
                    {
                        MaxRetryAttempts = calls.Retries,
                        Delay = calls.RetryDelay,
                        BackoffType = DelayBackoffType.Exponential,
                        UseJitter = true,
                        ShouldRetryAfterHeader = true,
                        MaxDelay = TimeSpan.FromMinutes(2),
                    });
                pipeline.AddTimeout(calls.Timeout);
            });
        services.AddSingleton(sp =>
        {
            var http = sp.GetRequiredService<IHttpClientFactory>().CreateClient(HttpClientName);
            var client = new ChatClient(options.CaptionerModel,
                // Local servers need no key; the SDK insists on one, and they ignore what it sends.
                new ApiKeyCredential(string.IsNullOrEmpty(options.CaptionerApiKey) ? "no-key" : options.CaptionerApiKey),
                new OpenAIClientOptions
                {
                    Endpoint = new Uri(options.CaptionerEndpoint!),
                    Transport = new HttpClientPipelineTransport(http),
                    // The resilience handler retries; the SDK's own retries would multiply them.
                    RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
                    NetworkTimeout = calls.Timeout * (calls.Retries + 1) + TimeSpan.FromMinutes(10),
                });
            return new OpenAiCaptioner(client.AsIChatClient(), options.CaptionerConcurrency, calls.AnswerAttempts, calls.RetryDelay,
                sp.GetRequiredService<ILogger<OpenAiCaptioner>>());
        });
        services.AddSingleton<ICaptioner>(sp => options.CaptionerFallback == CaptionSources.Local
            ? new FallbackCaptioner(sp.GetRequiredService<OpenAiCaptioner>(), sp.GetRequiredService<LocalCaptioner>(),
                sp.GetRequiredService<ILogger<FallbackCaptioner>>())
            : sp.GetRequiredService<OpenAiCaptioner>());
        return services;
    }

    /// <summary>One line naming what is wrong or missing, as the other settings do.</summary>
    private static void Check(LikenessOptions o)
    {
        string? error = null;
        if (!CaptionSources.All.Contains(o.Captioner))
            error = $"Unknown --captioner '{o.Captioner}': use local (the default), openai or florence2.";
        else if (o.CaptionerFallback is not ("none" or CaptionSources.Local))
            error = $"Unknown --captioner-fallback '{o.CaptionerFallback}': use none (the default) or local.";
        else if (o.CaptionerConcurrency is < 1 or > 64)
            error = $"--captioner-concurrency must be 1 to 64; got {o.CaptionerConcurrency}.";
        else if (o.Captioner == CaptionSources.OpenAi)
        {
            var missing = new List<string>();
            if (string.IsNullOrWhiteSpace(o.CaptionerEndpoint)) missing.Add("--captioner-endpoint (LIKENESS_CAPTIONER_ENDPOINT, the base URL ending in /v1)");
            if (string.IsNullOrWhiteSpace(o.CaptionerModel)) missing.Add("--captioner-model (LIKENESS_CAPTIONER_MODEL)");
            if (missing.Count > 0) error = $"--captioner openai needs {string.Join(" and ", missing)}.";
            else if (!Uri.TryCreate(o.CaptionerEndpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
                error = $"--captioner-endpoint '{o.CaptionerEndpoint}' is not an absolute http(s) URL such as http://127.0.0.1:11434/v1.";
        }
        else if (o.Captioner == CaptionSources.Florence2)
        {
            if (string.IsNullOrWhiteSpace(o.CaptionerModels))
                error = "--captioner florence2 needs --captioner-models (LIKENESS_CAPTIONER_MODELS), a Florence-2 model folder such as huggingface-cli download microsoft/Florence-2-base --local-dir DIR makes.";
            else
            {
                try { Florence2Folder.Locate(o.CaptionerModels); }
                catch (InvalidOperationException e) { error = e.Message; }
            }
        }
        if (error is not null) throw new OptionsValidationException("Captioner", typeof(LikenessOptions), [error]);
    }
}
