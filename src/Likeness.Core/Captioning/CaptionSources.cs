namespace Likeness.Core.Captioning;

/// <summary>The captioners a deployment can choose (<c>--captioner</c>); also each dataset item's recorded source.</summary>
public static class CaptionSources
{
    /// <summary>Offline: measures the photo and repeats the request's fields.</summary>
    public const string Local = "local";
    /// <summary>Any OpenAI-compatible vision endpoint.</summary>
    public const string OpenAi = "openai";
    /// <summary>Florence-2 (base or large) run in-process by the engine from <c>--captioner-models</c>.</summary>
    public const string Florence2 = "florence2";

    public static readonly string[] All = [Local, OpenAi, Florence2];
}
