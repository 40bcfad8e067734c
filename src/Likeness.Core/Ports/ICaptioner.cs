namespace Likeness.Core.Ports;

/// <summary>Describes one normalised training photo in a natural sentence. The trigger word and class phrase
/// are inserted by the pipeline, never left to the captioner.</summary>
public interface ICaptioner
{
    Task<string> CaptionAsync(CaptionInput input, CancellationToken cancellationToken);
}

/// <param name="Jpeg">The normalised photo (EXIF orientation applied, metadata stripped, RGB).</param>
public sealed record CaptionInput(byte[] Jpeg, int Width, int Height, SubjectDescription Subject);

public sealed record SubjectDescription(string Kind, string? Gender, string? Ethnicity, string? Age);
