using System.Text;
using Likeness.Core.Media;
using Likeness.Core.Ports;

namespace Likeness.Core.Captioning;

/// <summary>
/// The default captioner: needs no model download. It writes what it measures (orientation, framing, colours,
/// brightness, contrast) and what the request says about the subject — never a guess it cannot back. A photo of
/// something on a plain backdrop is captioned with the backdrop and the place instead ("a photo of a small object on
/// a red background, at the top left"; the size for objects only), in the words the embedded flux-tiny learned: what
/// the caption explains, the LoRA need not learn, so it keeps the subject and not the backgrounds of its photos.
/// </summary>
public sealed class LocalCaptioner : ICaptioner
{
    public Task<Caption> CaptionAsync(CaptionInput input, CancellationToken cancellationToken)
    {
        var stats = ImageMeasurer.Measure(input.Jpeg);
        return Task.FromResult(new Caption(Describe(input.Subject, stats), CaptionSources.Local));
    }

    public static string Describe(SubjectDescription subject, ImageStatistics s)
    {
        var text = new StringBuilder("a photo of ");
        var (noun, details) = SubjectPhrase(subject);
        if (s is { Background: { } background, Place: { } place })
        {
            text.Append(s.Size is { } size && subject.Kind == "object" ? $"a {size} object" : noun);
            text.Append(" on ").Append(background).Append(", ").Append(place);
            if (details.Length > 0) text.Append(", ").Append(details);
            return text.ToString();
        }
        text.Append(noun);
        if (details.Length > 0) text.Append(", ").Append(details);
        text.Append(", ").Append(s.Orientation).Append(" orientation, ").Append(s.Framing);
        var light = s.Brightness switch
        {
            < 0.25 => "dark, low-key lighting",
            < 0.45 => "dim lighting",
            < 0.65 => "even lighting",
            < 0.8 => "bright lighting",
            _ => "very bright, high-key lighting",
        };
        var contrast = s.Contrast switch { < 0.12 => "soft", > 0.28 => "high-contrast", _ => "" };
        text.Append(", ").Append(contrast.Length > 0 ? contrast + " " : "").Append(light);
        var mood = s.Saturation < 0.15 ? "muted" : s.Saturation > 0.5 ? "vivid" : "natural";
        text.Append(", ").Append(mood).Append(' ');
        text.Append(s.DominantColours.Count == 1 ? s.DominantColours[0] : string.Join(", ", s.DominantColours.Take(s.DominantColours.Count - 1)) + " and " + s.DominantColours[^1]);
        text.Append(s.DominantColours.Count == 1 ? " tones" : " tones");
        return text.ToString();
    }

    /// <summary>The subject's noun phrase and what the request says of it ("East Asian, 34 years old"; may be empty).</summary>
    private static (string Noun, string Details) SubjectPhrase(SubjectDescription s)
    {
        switch (s.Kind)
        {
            case "person":
                var noun = s.Gender switch { "female" => "a woman", "male" => "a man", _ => "a person" };
                var details = new List<string>();
                if (!string.IsNullOrWhiteSpace(s.Ethnicity)) details.Add(s.Ethnicity!);
                if (!string.IsNullOrWhiteSpace(s.Age)) details.Add(AgePhrase(s.Age!));
                return (noun, string.Join(", ", details));
            case "style":
                return ("a scene", "");
            default:
                return ("an object", "");
        }
    }

    private static string AgePhrase(string age) =>
        int.TryParse(age, out var years) && years is > 0 and < 130 ? $"{years} years old" : age;
}
