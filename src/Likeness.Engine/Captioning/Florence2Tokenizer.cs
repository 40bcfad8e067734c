using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Likeness.Engine.Captioning;

/// <summary>
/// Florence-2's tokenizer, BART's byte-level BPE (GPT-2's, as RoBERTa uses it: no prefix space, no end-of-word
/// suffix), through Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/>, from the model folder's <c>vocab.json</c> +
/// <c>merges.txt</c> or, lacking those, its <c>tokenizer.json</c>. Prompts are wrapped in <c>&lt;s&gt;</c> … <c>&lt;/s&gt;</c>;
/// captions are decoded with every special token dropped: BART's four, and every id beyond the BPE vocabulary (the
/// location and task tokens Florence-2 adds, the image token).
/// </summary>
public sealed partial class Florence2Tokenizer
{
    private readonly BpeTokenizer _tokenizer;
    private readonly HashSet<int> _special;
    private readonly int _vocabSize;

    public int Bos { get; }
    public int Eos { get; }

    public Florence2Tokenizer(Dictionary<string, int> vocab, IEnumerable<string> merges, IEnumerable<int>? addedSpecialIds = null)
    {
        int Id(string token) => vocab.TryGetValue(token, out var id) ? id : throw new InvalidDataException($"The Florence-2 vocabulary lacks {token}.");
        (Bos, Eos) = (Id("<s>"), Id("</s>"));
        _vocabSize = vocab.Count;
        _special = [Bos, Eos, Id("<pad>"), .. vocab.TryGetValue("<unk>", out var unk) ? [unk] : Array.Empty<int>(), .. addedSpecialIds ?? []];
        var specials = new Dictionary<string, int> { ["<s>"] = Bos, ["</s>"] = Eos };
        var options = new BpeOptions(vocab)
        {
            Merges = merges.Distinct().ToList(),
            SpecialTokens = specials,
            PreTokenizer = new RegexPreTokenizer(Gpt2Pattern(), specials),
            ByteLevel = true,
            UnknownToken = vocab.ContainsKey("<unk>") ? "<unk>" : null,
        };
        try
        {
            _tokenizer = BpeTokenizer.Create(options);
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidDataException($"The Florence-2 merges do not fit the vocabulary: {e.Message}", e);
        }
    }

    /// <summary>True when the folder holds a tokenizer this class reads.</summary>
    public static bool IsIn(string folder) =>
        File.Exists(Path.Combine(folder, "vocab.json")) && File.Exists(Path.Combine(folder, "merges.txt")) || File.Exists(Path.Combine(folder, "tokenizer.json"));

    public static Florence2Tokenizer FromFolder(string folder)
    {
        var vocabFile = Path.Combine(folder, "vocab.json");
        var mergesFile = Path.Combine(folder, "merges.txt");
        var tokenizerJson = Path.Combine(folder, "tokenizer.json");
        var added = new List<int>();
        JsonDocument? json = File.Exists(tokenizerJson) ? JsonDocument.Parse(File.ReadAllText(tokenizerJson)) : null;
        using var _ = json;
        if (json is not null && json.RootElement.TryGetProperty("added_tokens", out var addedTokens))
            added.AddRange(addedTokens.EnumerateArray().Where(t => t.TryGetProperty("special", out var s) && s.GetBoolean()).Select(t => t.GetProperty("id").GetInt32()));

        if (File.Exists(vocabFile) && File.Exists(mergesFile))
        {
            var vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(vocabFile)) ?? throw new InvalidDataException("vocab.json is empty.");
            var merges = File.ReadLines(mergesFile).Where(l => l.Length > 0 && !l.StartsWith("#version", StringComparison.Ordinal));
            return new Florence2Tokenizer(vocab, merges, added);
        }
        if (json is null) throw new InvalidDataException($"{folder} has no tokenizer: vocab.json + merges.txt, or tokenizer.json.");
        var model = json.RootElement.GetProperty("model");
        var fromJson = model.GetProperty("vocab").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32());
        // Newer files write each merge as a pair, older ones as "left right".
        var pairs = model.GetProperty("merges").EnumerateArray()
            .Select(m => m.ValueKind == JsonValueKind.Array ? $"{m[0].GetString()} {m[1].GetString()}" : m.GetString()!);
        return new Florence2Tokenizer(fromJson, pairs, added);
    }

    /// <summary>&lt;s&gt; text &lt;/s&gt; as ids.</summary>
    public long[] EncodePrompt(string text) => [Bos, .. _tokenizer.EncodeToIds(text).Select(i => (long)i), Eos];

    /// <summary>The text of generated ids, special tokens dropped, surrounding whitespace trimmed.</summary>
    public string Decode(IEnumerable<long> ids) =>
        (_tokenizer.Decode(ids.Select(i => (int)i).Where(i => i >= 0 && i < _vocabSize && !_special.Contains(i))) ?? "").Trim();

    /// <summary>GPT-2's pre-tokenization pattern (contractions, letters, digits, other symbols, each with one leading space; spaces).</summary>
    [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")]
    private static partial Regex Gpt2Pattern();
}
