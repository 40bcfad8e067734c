namespace Likeness.Core.Ports;

/// <summary>Describes one normalised training photo in a natural sentence. The trigger word and class phrase
/// are inserted by the pipeline, never left to the captioner.</summary>
public interface ICaptioner
{
    /// <summary>How many photos of one dataset may be described at once: one for work done on this CPU, several for a
    /// remote endpoint, whose calls mostly wait.</summary>
    int Parallelism => 1;

    Task<Caption> CaptionAsync(CaptionInput input, CancellationToken cancellationToken);
}

/// <param name="Jpeg">The normalised photo (EXIF orientation applied, metadata stripped, RGB).</param>
public sealed record CaptionInput(byte[] Jpeg, int Width, int Height, SubjectDescription Subject);

public sealed record SubjectDescription(string Kind, string? Gender, string? Ethnicity, string? Age);

/// <param name="Text">The description, without trigger word.</param>
/// <param name="Source">Which captioner wrote it (<see cref="Captioning.CaptionSources"/>): recorded per photo in the dataset.</param>
public sealed record Caption(string Text, string Source);
