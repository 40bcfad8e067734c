using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Likeness.Engine.Text;

/// <summary>
/// CLIP's byte-level BPE (<c>vocab.json</c> + <c>merges.txt</c>): lower-cased, whitespace-collapsed text split by
/// CLIP's pattern, each piece's UTF-8 bytes mapped to GPT-2's printable byte alphabet with <c>&lt;/w&gt;</c> closing
/// the word, merged by rank; then <c>&lt;|startoftext|&gt;</c> … <c>&lt;|endoftext|&gt;</c>, truncated to the length
/// and padded with the end token, as FLUX's CLIP tokenizer does (the pooled output is read at the first end token).
/// </summary>
public sealed partial class ClipBpeTokenizer : ITextTokenizer
{
    public const string StartToken = "<|startoftext|>";
    public const string EndToken = "<|endoftext|>";

    private readonly Dictionary<string, long> _vocab;
    private readonly Dictionary<(string, string), int> _ranks;
    private readonly Dictionary<string, string[]> _cache = new(StringComparer.Ordinal);
    private static readonly string[] ByteChars = BuildByteChars();

    public ClipBpeTokenizer(Dictionary<string, long> vocab, IEnumerable<(string Left, string Right)> merges)
    {
        _vocab = vocab;
        _ranks = new Dictionary<(string, string), int>();
        var rank = 0;
        foreach (var merge in merges) _ranks.TryAdd(merge, rank++);
        if (!_vocab.ContainsKey(StartToken) || !_vocab.ContainsKey(EndToken))
            throw new InvalidDataException($"The CLIP vocabulary lacks {StartToken} or {EndToken}.");
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

    public int VocabularySize => _vocab.Count;

    public long[] Encode(string text, int length)
    {
        var ids = new List<long> { _vocab[StartToken] };
        var cleaned = Whitespace().Replace(text, " ").Trim().ToLowerInvariant();
        foreach (Match piece in Pattern().Matches(cleaned))
        {
            if (piece.Value is StartToken or EndToken) { ids.Add(_vocab[piece.Value]); continue; }
            var chars = string.Concat(Encoding.UTF8.GetBytes(piece.Value).Select(b => ByteChars[b]));
            foreach (var token in Bpe(chars))
                ids.Add(_vocab.TryGetValue(token, out var id) ? id : throw new InvalidDataException($"'{token}' is not in the CLIP vocabulary."));
        }
        var end = _vocab[EndToken];
        var result = new long[length];
        var kept = Math.Min(ids.Count, length - 1);
        for (var i = 0; i < kept; i++) result[i] = ids[i];
        for (var i = kept; i < length; i++) result[i] = end;
        return result;
    }

    /// <summary>Merges the lowest-ranked adjacent pair until none is in the merge list.</summary>
    private string[] Bpe(string chars)
    {
        if (_cache.TryGetValue(chars, out var cached)) return cached;
        var word = chars.Select(c => c.ToString()).ToList();
        word[^1] += "</w>";
        while (word.Count > 1)
        {
            var best = -1;
            var bestRank = int.MaxValue;
            for (var i = 0; i < word.Count - 1; i++)
                if (_ranks.TryGetValue((word[i], word[i + 1]), out var r) && r < bestRank) { bestRank = r; best = i; }
            if (best < 0) break;
            var (left, right) = (word[best], word[best + 1]);
            // Merge every occurrence of the pair, left to right, as the reference does.
            var merged = new List<string>(word.Count);
            for (var i = 0; i < word.Count; i++)
            {
                if (i < word.Count - 1 && word[i] == left && word[i + 1] == right) { merged.Add(left + right); i++; }
                else merged.Add(word[i]);
            }
            word = merged;
        }
        return _cache[chars] = [.. word];
    }

    /// <summary>GPT-2's map from bytes to printable characters: printable Latin-1 stays, the rest moves above 255.</summary>
    private static string[] BuildByteChars()
    {
        var map = new string[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = ((char)(printable ? b : next++)).ToString();
        }
        return map;
    }

    [GeneratedRegex(@"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+", RegexOptions.IgnoreCase)]
    private static partial Regex Pattern();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
