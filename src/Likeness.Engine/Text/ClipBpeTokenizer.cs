using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Likeness.Engine.Text;

/// <summary>
/// CLIP's byte-level BPE (<c>vocab.json</c> + <c>merges.txt</c>) through Microsoft.ML.Tokenizers'
/// <see cref="BpeTokenizer"/>, set up as Hugging Face's CLIPTokenizerFast: lower-cased text split by CLIP's pattern
/// (<see cref="RegexPreTokenizer"/>, with <c>&lt;|startoftext|&gt;</c> and <c>&lt;|endoftext|&gt;</c> written in the
/// text taken out first as special tokens), each piece's UTF-8 bytes mapped to GPT-2's printable alphabet
/// (<see cref="BpeOptions.ByteLevel"/>) with <c>&lt;/w&gt;</c> closing the word (<see cref="BpeOptions.EndOfWordSuffix"/>),
/// merged by rank, a symbol the vocabulary lacks read as the end token (Hugging Face's <c>unk_token</c>); then
/// <c>&lt;|startoftext|&gt;</c> … <c>&lt;|endoftext|&gt;</c>, truncated to the length (the end token kept) and padded
/// with the end token, as FLUX's CLIP tokenizer does (the pooled output is read at the first end token).
/// </summary>
/// <remarks>
/// Hugging Face's normalizer also collapses whitespace, which changes no piece (the pattern never takes whitespace), and
/// composes to NFC first, which cannot be had here: the engine runs with <c>InvariantGlobalization</c>, where
/// <c>string.Normalize(NormalizationForm.FormC)</c> returns its input unchanged (checked), so a decomposed accent
/// (e + U+0301) is split as the letter and a separate mark where Hugging Face sees é; precomposed text, which is what
/// keyboards and most sources give, tokenizes alike. .NET's regex sees a character beyond U+FFFF as two surrogates,
/// neither <c>\p{L}</c> nor <c>\p{N}</c>, so such a letter or digit joins neighbouring punctuation rather than letters.
/// </remarks>
public sealed partial class ClipBpeTokenizer : ITextTokenizer
{
    public const string StartToken = "<|startoftext|>";
    public const string EndToken = "<|endoftext|>";

    private readonly BpeTokenizer _tokenizer;
    private readonly int _start;
    private readonly int _end;

    public ClipBpeTokenizer(Dictionary<string, long> vocab, IEnumerable<(string Left, string Right)> merges)
    {
        if (!vocab.TryGetValue(StartToken, out var start) || !vocab.TryGetValue(EndToken, out var end))
            throw new InvalidDataException($"The CLIP vocabulary lacks {StartToken} or {EndToken}.");
        (_start, _end) = (checked((int)start), checked((int)end));
        VocabularySize = vocab.Count;
        var specials = new Dictionary<string, int> { [StartToken] = _start, [EndToken] = _end };
        var options = new BpeOptions(vocab.Select(p => KeyValuePair.Create(p.Key, checked((int)p.Value))))
        {
            // The library takes a pair once; the first rank of a repeated pair stands.
            Merges = merges.Distinct().Select(m => $"{m.Left} {m.Right}").ToList(),
            SpecialTokens = specials,
            Normalizer = ClipLowerCase.Instance,
            PreTokenizer = new RegexPreTokenizer(Pattern(), specials),
            ByteLevel = true,
            EndOfWordSuffix = "</w>",
            UnknownToken = EndToken,
        };
        try
        {
            _tokenizer = BpeTokenizer.Create(options);
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidDataException($"The CLIP merges do not fit the vocabulary: {e.Message}", e);
        }
    }

    /// <summary>Reads a Hugging Face CLIP tokenizer folder (<c>vocab.json</c>, <c>merges.txt</c> with its version line).</summary>
    public static ClipBpeTokenizer FromFolder(string folder)
    {
        var vocab = JsonSerializer.Deserialize<Dictionary<string, long>>(File.ReadAllText(Path.Combine(folder, "vocab.json")))
            ?? throw new InvalidDataException("vocab.json is empty.");
        var merges = File.ReadLines(Path.Combine(folder, "merges.txt"))
            .Where(l => l.Length > 0 && !l.StartsWith("#version", StringComparison.Ordinal))
            .Select(l => l.Split(' ')).Where(p => p.Length == 2).Select(p => (p[0], p[1]));
        return new ClipBpeTokenizer(vocab, merges);
    }

    public int VocabularySize { get; }

    public long[] Encode(string text, int length)
    {
        var pieces = _tokenizer.EncodeToIds(text);
        var result = new long[length];
        var kept = Math.Max(0, Math.Min(pieces.Count + 1, length - 1));
        if (kept > 0) result[0] = _start;
        for (var i = 1; i < kept; i++) result[i] = pieces[i - 1];
        for (var i = kept; i < length; i++) result[i] = _end;
        return result;
    }

    /// <summary>
    /// Lower-cases as Hugging Face's <c>Lowercase</c> normalizer does (Rust's <c>char::to_lowercase</c>, character by
    /// character): .NET's invariant lower-casing, which matches it everywhere but İ (U+0130), left as is by .NET and
    /// turned into i + combining dot above (U+0307) by Rust. Checked over every code point against Python's per-character
    /// <c>lower()</c>; the other differences are letters newer than Python's Unicode tables.
    /// </summary>
    private sealed class ClipLowerCase : Normalizer
    {
        public static readonly ClipLowerCase Instance = new();

        public override string Normalize(string original) =>
            original.Replace("\u0130", "i\u0307", StringComparison.Ordinal).ToLowerInvariant();

        public override string Normalize(ReadOnlySpan<char> original) => Normalize(original.ToString());
    }

    /// <summary>CLIP's pre-tokenization pattern; the special tokens are split out before it by the pre-tokenizer.</summary>
    [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+", RegexOptions.IgnoreCase)]
    private static partial Regex Pattern();
}
