namespace Likeness.Core.Media;

/// <summary>An uploaded file refused for what it is; <see cref="Code"/> is the API's stable error code.</summary>
public sealed class MediaValidationException(string code, string message) : Exception(message)
{
    public string Code { get; } = code;
}
