namespace Likeness.Core.Captioning;

/// <summary>
/// Judges what a vision model answered before it becomes a training caption. An unusable answer (empty, a refusal,
/// several paragraphs, too long, the prompt said back) is treated like a failed call: asked again.
/// </summary>
public static class CaptionAnswer
{
    /// <summary>Longer than a two-sentence caption has any reason to be; FLUX trainers keep captions well under this.</summary>
    public const int MaxLength = 600;

    private static readonly string[] RefusalOpenings =
    [
        "i can't", "i cannot", "i can not", "i'm sorry", "i am sorry", "sorry", "i'm unable", "i am unable", "i won't",
        "i will not", "as an ai", "i'm not able", "i am not able", "unfortunately, i", "i apologize",
    ];

    private static readonly string[] Preambles = ["caption:", "here is the caption:", "here's the caption:", "here is a caption:"];

    /// <summary>The usable caption, or null with <paramref name="reason"/> saying why the answer was refused.</summary>
    public static string? Accept(string? answer, string prompt, out string reason)
    {
        var text = (answer ?? "").Trim();
        foreach (var preamble in Preambles)
            if (text.StartsWith(preamble, StringComparison.OrdinalIgnoreCase)) text = text[preamble.Length..].Trim();
        text = text.Trim('"', '\'', '“', '”', '`').Trim();

        reason = "";
        if (text.Length == 0) reason = "the answer was empty";
        else if (RefusalOpenings.Any(r => text.StartsWith(r, StringComparison.OrdinalIgnoreCase))) reason = "the model refused";
        else if (text.Contains("\n\n") || text.Split('\n').Length > 3) reason = "the answer has several paragraphs";
        else if (text.Length > MaxLength) reason = $"the answer is longer than {MaxLength} characters";
        else if (EchoesPrompt(text, prompt)) reason = "the answer repeats the prompt";
        if (reason.Length > 0) return null;
        return string.Join(' ', text.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries));
    }

    /// <summary>Any run of eight consecutive words of the prompt in the answer: a caption never needs them.</summary>
    private static bool EchoesPrompt(string text, string prompt)
    {
        var words = Words(prompt);
        var answer = " " + string.Join(' ', Words(text)) + " ";
        for (var i = 0; i + 8 <= words.Length; i++)
            if (answer.Contains(" " + string.Join(' ', words, i, 8) + " ", StringComparison.Ordinal)) return true;
        return false;
    }

    private static string[] Words(string s) =>
        s.ToLowerInvariant().Split((char[])[' ', '\n', '\t', ',', '.', ':', ';', '"'], StringSplitOptions.RemoveEmptyEntries);
}
