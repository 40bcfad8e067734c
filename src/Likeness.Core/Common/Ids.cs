using System.Security.Cryptography;
using System.Text.RegularExpressions;

namespace Likeness.Core.Common;

/// <summary>Public ids: a prefix plus 26 random Crockford base32 characters (130 bits), lower case.</summary>
public static partial class Ids
{
    private const string Alphabet = "0123456789abcdefghjkmnpqrstvwxyz";

    public static string NewLoraId() => New("lora_");
    public static string NewGenerationId() => New("img_");
    public static string NewTeamId() => New("team_");
    public static string NewKeyId() => New("key_");
    public static string NewWebhookMessageId() => New("msg_");

    public static string New(string prefix) => prefix + new string(RandomNumberGenerator.GetItems<char>(Alphabet, 26));

    public static bool IsLoraId(string? id) => id is not null && LoraPattern().IsMatch(id);
    public static bool IsGenerationId(string? id) => id is not null && GenerationPattern().IsMatch(id);

    [GeneratedRegex("^lora_[0-9a-hjkmnp-tv-z]{26}$")]
    private static partial Regex LoraPattern();

    [GeneratedRegex("^img_[0-9a-hjkmnp-tv-z]{26}$")]
    private static partial Regex GenerationPattern();
}
