using Likeness.Core.Ports;

namespace Likeness.Core.Captioning;

/// <summary>
/// Puts the trigger word and the class phrase into a caption by code, so that where the trigger goes never depends
/// on what a captioning model wrote.
/// </summary>
public static class CaptionComposer
{
    public static string ClassPhrase(SubjectDescription subject) => subject.Kind switch
    {
        "person" => subject.Gender switch { "female" => "woman", "male" => "man", _ => "person" },
        "style" => "style",
        _ => "object",
    };

    public static string Compose(string triggerWord, SubjectDescription subject, string caption)
    {
        var description = StripLeadIn(caption.Trim());
        var lead = subject.Kind == "style"
            ? $"an image in the style of {triggerWord}"
            : $"a photo of {triggerWord} {ClassPhrase(subject)}";
        return description.Length == 0 ? lead : $"{lead}, {description}";
    }

    /// <summary>Drops a leading "a photo of a man, " style phrase: the composed lead says it with the trigger word.</summary>
    private static string StripLeadIn(string caption)
    {
        foreach (var lead in new[] { "a photo of ", "an image of ", "a picture of " })
        {
            if (!caption.StartsWith(lead, StringComparison.OrdinalIgnoreCase)) continue;
            var comma = caption.IndexOf(',');
            return comma < 0 ? "" : caption[(comma + 1)..].Trim();
        }
        return caption;
    }
}
