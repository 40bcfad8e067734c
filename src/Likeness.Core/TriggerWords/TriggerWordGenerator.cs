using System.Security.Cryptography;

namespace Likeness.Core.TriggerWords;

/// <summary>
/// Five upper-case letters, random and pronounceable (consonant/vowel patterns), never a common English word or
/// an offensive one. Uniqueness across the installation is the database's unique index; callers retry on a clash.
/// </summary>
public sealed class TriggerWordGenerator
{
    private const string Consonants = "BCDFGHJKLMNPRSTVWXZ";
    private const string Vowels = "AEIOUY";
    private static readonly string[] Patterns = ["CVCVC", "CVCCV", "VCVCV", "CVVCV", "CCVCV"];

    public string Next()
    {
        while (true)
        {
            var pattern = Patterns[RandomNumberGenerator.GetInt32(Patterns.Length)];
            var word = string.Create(5, pattern, static (span, p) =>
            {
                for (var i = 0; i < 5; i++)
                {
                    var set = p[i] == 'C' ? Consonants : Vowels;
                    span[i] = set[RandomNumberGenerator.GetInt32(set.Length)];
                }
            });
            if (IsAllowed(word)) return word;
        }
    }

    public static bool IsAllowed(string word) =>
        word.Length == 5 && word.All(c => c is >= 'A' and <= 'Z') &&
        !EnglishWords.Common.Contains(word) && !EnglishWords.Offensive.Any(word.Contains);
}
