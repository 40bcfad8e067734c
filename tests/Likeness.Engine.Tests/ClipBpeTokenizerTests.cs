using System.Globalization;
using System.Text;
using System.Text.Json;
using Likeness.Engine.Text;

namespace Likeness.Engine.Tests;

public sealed class ClipBpeTokenizerTests
{
    private static readonly string[] Vocabulary =
    [
        "<|startoftext|>", "<|endoftext|>", "a</w>", "p", "h", "o", "t", "ph", "ot", "phot", "o</w>", "photo</w>",
        "f</w>", "z", "k", "r", ",</w>", "i", "t</w>", "'", "s</w>", "2</w>", "Ã", "©</w>",
    ];

    private static ClipBpeTokenizer Tokenizer()
    {
        var folder = Directory.CreateTempSubdirectory().FullName;
        File.WriteAllText(Path.Combine(folder, "vocab.json"), JsonSerializer.Serialize(Vocabulary.Select((t, i) => (t, i)).ToDictionary(x => x.t, x => x.i)));
        File.WriteAllLines(Path.Combine(folder, "merges.txt"), ["#version: 0.2", "p h", "o t", "ph ot", "phot o</w>"]);
        return ClipBpeTokenizer.FromFolder(folder);
    }

    private static string[] Tokens(long[] ids) => ids.Select(i => Vocabulary[i]).ToArray();

    [Fact]
    public void Encodes_hand_checked_strings_with_start_end_and_end_padding()
    {
        var ids = Tokenizer().Encode("A  photo of ZOKRA, it's 2 é", 20);
        Assert.Equal(
        [
            "<|startoftext|>", "a</w>", "photo</w>", "o", "f</w>", "z", "o", "k", "r", "a</w>", ",</w>", "i", "t</w>", "'", "s</w>", "2</w>",
            "Ã", "©</w>", "<|endoftext|>", "<|endoftext|>",
        ], Tokens(ids));
    }

    [Fact]
    public void Truncates_to_the_length_keeping_the_end_token()
    {
        Assert.Equal(["<|startoftext|>", "a</w>", "photo</w>", "o", "<|endoftext|>"], Tokens(Tokenizer().Encode("a photo of", 5)));
    }

    [Fact]
    public void Merges_by_rank_until_no_pair_is_listed()
    {
        // photo: (p,h), (o,t), (ph,ot), (phot,o</w>) in rank order → one token. In "pot" no pair is listed: the last t carries </w>.
        Assert.Equal(["<|startoftext|>", "photo</w>", "<|endoftext|>"], Tokens(Tokenizer().Encode("photo", 3)));
        Assert.Equal(["<|startoftext|>", "p", "o", "t</w>", "<|endoftext|>"], Tokens(Tokenizer().Encode("pot", 5)));
    }

    [Fact]
    public void Encodes_a_longer_hand_checked_string_with_punctuation_digits_apostrophes_accents_and_spacing()
    {
        var (tokenizer, tokens) = Full(["p h", "o t", "ph ot", "phot o</w>", "c a", "ca f", "Ã ©</w>", "caf Ã©</w>", "' s</w>"]);
        var ids = tokenizer.Encode("A  PHOTO\tof ZOKRA'S café—can't  stop: 1,024 naïve!! rock'n İ ", 48);
        // é is C3 A9 → Ã ©; ï is C3 AF → Ã ¯; — is E2 80 94 → â Ģ Ķ (80 and 94 are moved above 255); İ lower-cases to
        // i + U+0307 (CC 87 → Ì ĩ), a letter and a mark. Digits go one by one; a punctuation run is one word, so only
        // its last symbol carries </w>; 'n is no contraction; the whitespace between pieces leaves no trace.
        Assert.Equal(
        [
            "<|startoftext|>", "a</w>", "photo</w>", "o", "f</w>", "z", "o", "k", "r", "a</w>", "'s</w>", "cafÃ©</w>",
            "â", "Ģ", "Ķ</w>", "ca", "n</w>", "'", "t</w>", "s", "t", "o", "p</w>", ":</w>", "1</w>", ",</w>", "0</w>",
            "2</w>", "4</w>", "n", "a", "Ã", "¯", "v", "e</w>", "!", "!</w>", "r", "o", "c", "k</w>", "'</w>", "n</w>",
            "i</w>", "Ì", "ĩ</w>", "<|endoftext|>", "<|endoftext|>",
        ], ids.Select(i => tokens[i]));
    }

    [Fact]
    public void Special_tokens_written_in_the_text_map_to_their_ids_in_any_case_and_next_to_punctuation()
    {
        var (tokenizer, tokens) = Full(["p h", "o t", "ph ot", "phot o</w>"]);
        var ids = tokenizer.Encode("<|startoftext|>a photo<|endoftext|>!<|ENDOFTEXT|> <|EndOfText|>x", 12);
        Assert.Equal(
        [
            "<|startoftext|>", "<|startoftext|>", "a</w>", "photo</w>", "<|endoftext|>", "!</w>", "<|endoftext|>",
            "<|endoftext|>", "x</w>", "<|endoftext|>", "<|endoftext|>", "<|endoftext|>",
        ], ids.Select(i => tokens[i]));
    }

    [Fact]
    public void Symbols_missing_from_the_vocabulary_read_as_the_end_token_as_Hugging_Face_does()
    {
        // CLIPTokenizerFast's unk_token is <|endoftext|>, one per missing symbol; a real CLIP vocabulary lacks none.
        Assert.Equal(
            ["<|startoftext|>", "a</w>", "<|endoftext|>", "<|endoftext|>", "photo</w>", "<|endoftext|>", "<|endoftext|>"],
            Tokens(Tokenizer().Encode("a yx photo", 7)));
    }

    [Fact]
    public void Empty_text_is_start_then_end_padding()
    {
        Assert.Equal(["<|startoftext|>", "<|endoftext|>", "<|endoftext|>"], Tokens(Tokenizer().Encode("", 3)));
        Assert.Equal(["<|startoftext|>", "<|endoftext|>"], Tokens(Tokenizer().Encode(" \t\n ", 2)));
    }

    [Fact]
    public void Matches_a_plain_statement_of_CLIP_BPE_on_random_strings()
    {
        string[] alphabet =
        [
            "a", "a", "b", "c", "o", "o", "p", "h", "s", "t", "e", "r", "l", "A", "P", " ", " ", "  ", "\t", "\n", "'", "'", "'re", "'ll",
            "1", "2", "9", "٣", ",", ".", "!", "-", "é", "É", "ß", "ï", "—", "İ", "Σ", "\u0301", "\u00AD", "\u0001", "€",
            "<|startoftext|>", "<|endoftext|>", "<|EndOfText|>", "<|end", "|>",
        ];
        static bool IsSpecial(string token) => token is ClipBpeTokenizer.StartToken or ClipBpeTokenizer.EndToken;
        var random = new Random(1234);
        string RandomText() => string.Concat(Enumerable.Range(0, random.Next(0, 25)).Select(_ => alphabet[random.Next(alphabet.Length)]));
        var bytes = ByteSymbols();
        // Merges learned the way BPE training makes them: each joins two neighbours inside a word of some text as the
        // merges so far tokenize it, so every merge's parts exist before it and most of them fire.
        var merges = new List<(string, string)>();
        var ranks = new Dictionary<(string, string), int>();
        while (merges.Count < 300)
        {
            var tokens = ReferenceTokens(RandomText(), ranks, bytes).ToList();
            var inWord = Enumerable.Range(0, Math.Max(0, tokens.Count - 1))
                .Where(k => !tokens[k].EndsWith("</w>", StringComparison.Ordinal) && !IsSpecial(tokens[k]) && !IsSpecial(tokens[k + 1]))
                .ToList();
            if (inWord.Count == 0) continue;
            var at = inWord[random.Next(inWord.Count)];
            ranks[(tokens[at], tokens[at + 1])] = merges.Count;
            merges.Add((tokens[at], tokens[at + 1]));
        }
        var vocab = new Dictionary<string, long>();
        foreach (var token in bytes.Concat(bytes.Select(b => b + "</w>")).Concat(merges.Select(m => m.Item1 + m.Item2)))
            vocab.TryAdd(token, vocab.Count);
        vocab[ClipBpeTokenizer.StartToken] = vocab.Count;
        vocab[ClipBpeTokenizer.EndToken] = vocab.Count;
        var tokenizer = new ClipBpeTokenizer(vocab, merges);

        var merged = new HashSet<long>();
        for (var n = 0; n < 400; n++)
        {
            var text = RandomText();
            var expected = new List<long> { vocab[ClipBpeTokenizer.StartToken] };
            expected.AddRange(ReferenceTokens(text, ranks, bytes).Select(t => vocab.TryGetValue(t, out var id) ? id : vocab[ClipBpeTokenizer.EndToken]));
            const int Length = 40;
            var padded = expected.Take(Length - 1).Concat(Enumerable.Repeat(vocab[ClipBpeTokenizer.EndToken], Length - Math.Min(expected.Count, Length - 1)));
            var actual = tokenizer.Encode(text, Length);
            if (!padded.SequenceEqual(actual))
                Assert.Fail($"'{string.Concat(text.Select(c => c < 128 && !char.IsControl(c) ? c.ToString() : $"\\u{(int)c:X4}"))}': expected {string.Join(",", padded)}, got {string.Join(",", actual)}");
            merged.UnionWith(actual.Where(id => id >= 512 && id < vocab.Count - 2));
        }
        Assert.True(merged.Count > 100, $"only {merged.Count} merged tokens came up; the comparison would prove little");
    }

    /// <summary>
    /// CLIP's tokenization written out plainly, as the reference the library's configuration is checked against:
    /// lower-case (İ → i + U+0307, as Rust does), take the special tokens out, split the rest as CLIP's pattern does
    /// (contraction, letter run, one digit, run of anything else, whitespace dropped), map each piece's UTF-8 bytes,
    /// append &lt;/w&gt;, then repeatedly merge every occurrence of the lowest-ranked adjacent pair.
    /// </summary>
    private static IEnumerable<string> ReferenceTokens(string text, Dictionary<(string, string), int> ranks, string[] bytes)
    {
        string[] specials = [ClipBpeTokenizer.StartToken, ClipBpeTokenizer.EndToken];
        string[] contractions = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];
        static bool IsNumber(char c) => char.GetUnicodeCategory(c) is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;
        var s = text.Replace("\u0130", "i\u0307", StringComparison.Ordinal).ToLowerInvariant();
        string? SpecialAt(int i) => specials.FirstOrDefault(t => string.CompareOrdinal(s, i, t, 0, t.Length) == 0);
        var i = 0;
        while (i < s.Length)
        {
            string piece;
            if (SpecialAt(i) is { } special) { yield return special; i += special.Length; continue; }
            if (char.IsWhiteSpace(s[i])) { i++; continue; }
            if (contractions.FirstOrDefault(c => string.CompareOrdinal(s, i, c, 0, c.Length) == 0) is { } contraction) piece = contraction;
            else if (IsNumber(s[i])) piece = s[i].ToString();
            else
            {
                var letters = char.IsLetter(s[i]);
                var end = i + 1;
                while (end < s.Length && (letters
                    ? char.IsLetter(s[end])
                    : !char.IsWhiteSpace(s[end]) && !char.IsLetter(s[end]) && !IsNumber(s[end]) && SpecialAt(end) is null)) end++;
                piece = s[i..end];
            }
            i += piece.Length;
            var word = Encoding.UTF8.GetBytes(piece).Select(b => bytes[b]).ToList();
            word[^1] += "</w>";
            while (true)
            {
                var pairs = Enumerable.Range(0, word.Count - 1).Select(k => (word[k], word[k + 1])).Where(ranks.ContainsKey).ToList();
                if (pairs.Count == 0) break;
                var (left, right) = pairs.MinBy(p => ranks[p]);
                var next = new List<string>();
                for (var k = 0; k < word.Count; k++)
                {
                    if (k + 1 < word.Count && word[k] == left && word[k + 1] == right) { next.Add(left + right); k++; }
                    else next.Add(word[k]);
                }
                word = next;
            }
            foreach (var token in word) yield return token;
        }
    }

    /// <summary>GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the other 68 take 256, 257, … in order.</summary>
    private static string[] ByteSymbols()
    {
        var next = 256;
        return Enumerable.Range(0, 256)
            .Select(b => ((char)(b is >= 0x21 and <= 0x7E or >= 0xA1 and <= 0xAC or >= 0xAE ? b : next++)).ToString())
            .ToArray();
    }

    /// <summary>A tokenizer over every byte symbol (alone and closing a word), the given merges and the two specials.</summary>
    private static (ClipBpeTokenizer Tokenizer, Dictionary<long, string> Tokens) Full(string[] merges)
    {
        var bytes = ByteSymbols();
        var vocab = new Dictionary<string, long>();
        foreach (var token in bytes.Concat(bytes.Select(b => b + "</w>")).Concat(merges.Select(m => m.Replace(" ", "", StringComparison.Ordinal))))
            vocab.TryAdd(token, vocab.Count);
        vocab[ClipBpeTokenizer.StartToken] = vocab.Count;
        vocab[ClipBpeTokenizer.EndToken] = vocab.Count;
        var tokenizer = new ClipBpeTokenizer(vocab, merges.Select(m => m.Split(' ')).Select(p => (p[0], p[1])));
        return (tokenizer, vocab.ToDictionary(p => p.Value, p => p.Key));
    }
}
