using System.ClientModel;
using Likeness.Core.Captioning;
using Likeness.Core.Ports;
using Microsoft.Extensions.AI;
using Polly.Timeout;

namespace Likeness.Adapters;

/// <summary>
/// Captions through any OpenAI-compatible vision endpoint (OpenAI, Azure OpenAI, Ollama, vLLM, llama.cpp server,
/// LM Studio) behind Microsoft.Extensions.AI's <see cref="IChatClient"/>. Transport failures (429, 5xx, timeouts) are
/// retried below it by the HTTP client's resilience handler; an answer that comes back unusable is asked for again here.
/// </summary>
public sealed class OpenAiCaptioner(IChatClient chat, int parallelism, int answerAttempts, TimeSpan retryDelay, ILogger<OpenAiCaptioner> logger)
    : ICaptioner
{
    private static readonly ChatOptions Sampling = new() { Temperature = 0.2f, MaxOutputTokens = 200 };

    public int Parallelism => parallelism;

    public async Task<Caption> CaptionAsync(CaptionInput input, CancellationToken cancellationToken)
    {
        List<ChatMessage> messages =
        [
            new(ChatRole.System, CaptionPrompt.Instructions),
            // The normalised JPEG travels as an image part: a data URI, so the endpoint needs no access to our storage.
            new(ChatRole.User, [new TextContent(CaptionPrompt.Context(input.Subject)), new DataContent(input.Jpeg, "image/jpeg")]),
        ];
        var reason = "";
        for (var attempt = 1; attempt <= answerAttempts; attempt++)
        {
            ChatResponse response;
            try { response = await chat.GetResponseAsync(messages, Sampling, cancellationToken); }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The LoRA's error message reaches the customer: say what happened, not what the endpoint's body said.
                var what = e switch
                {
                    ClientResultException { Status: > 0 } c => $"answered HTTP {c.Status}",
                    TimeoutRejectedException => "did not answer in time",
                    _ => "could not be reached",
                };
                throw new InvalidOperationException($"The captioning endpoint {what}, after its retries.", e);
            }
            var caption = CaptionAnswer.Accept(response.Text, CaptionPrompt.Instructions, out reason);
            if (caption is not null) return new Caption(caption, CaptionSources.OpenAi);
            logger.LogWarning("Unusable caption from the captioning model ({Reason}), answer {Attempt} of {Attempts}", reason, attempt, answerAttempts);
            if (attempt < answerAttempts) await Task.Delay(retryDelay * Math.Pow(2, attempt - 1), cancellationToken);
        }
        throw new InvalidOperationException($"The captioning model gave no usable caption in {answerAttempts} answers: {reason}.");
    }
}
