using Likeness.Core.Ports;
using Likeness.Imaging;

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
        var (description, setting, size) = StripLeadIn(caption.Trim());
        var lead = subject.Kind == "style"
            ? $"an image in the style of {triggerWord}"
            : size is null ? $"a photo of {triggerWord} {ClassPhrase(subject)}" : $"a photo of a {size} {triggerWord} {ClassPhrase(subject)}";
        return description.Length == 0 ? lead : setting ? $"{lead} {description}" : $"{lead}, {description}";
    }

    private static readonly string[] LeadIns = ["a photo of ", "an image of ", "a picture of "];
    private static readonly string[] Prepositions = [" on ", " in ", " at ", " against ", " with "];

    /// <summary>
    /// Drops a leading "a photo of a man" phrase: the composed lead says it with the trigger word. What follows the
    /// noun is kept — a setting joined by a preposition ("on a red background, at the top left", which then follows
    /// the lead directly) or the clauses after a comma — and so is a measured size ("a small object": one of
    /// <see cref="Backdrop.Sizes"/>, which the lead then carries).
    /// </summary>
    private static (string Description, bool Setting, string? Size) StripLeadIn(string caption)
    {
        foreach (var lead in LeadIns)
        {
            if (!caption.StartsWith(lead, StringComparison.OrdinalIgnoreCase)) continue;
            var comma = caption.IndexOf(',');
            var end = comma < 0 ? caption.Length : comma;
            var setting = Prepositions.Select(p => caption.IndexOf(p, lead.Length, end - lead.Length, StringComparison.OrdinalIgnoreCase))
                .Where(i => i >= 0).DefaultIfEmpty(-1).Min();
            var noun = caption[lead.Length..(setting >= 0 ? setting : end)];
            var size = Backdrop.Sizes.Select(s => s.Word).FirstOrDefault(w => noun.StartsWith($"a {w} ", StringComparison.OrdinalIgnoreCase));
            if (setting >= 0) return (caption[(setting + 1)..].Trim(), true, size);
            return (comma < 0 ? "" : caption[(comma + 1)..].Trim(), false, size);
        }
        return (caption, false, null);
    }
}
