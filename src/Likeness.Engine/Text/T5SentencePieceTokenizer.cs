using Microsoft.ML.Tokenizers;

namespace Likeness.Engine.Text;

/// <summary>
/// T5's SentencePiece unigram tokenizer (<c>spiece.model</c>, or Hugging Face's <c>tokenizer.json</c> form of it) through
/// Microsoft.ML.Tokenizers: pieces, then the end token, truncated to the length (the end token kept) and padded with the
/// pad id 0, as FLUX's T5 tokenizer does.
/// </summary>
public sealed class T5SentencePieceTokenizer : ITextTokenizer
{
    public const string ModelFile = "spiece.model";
    public const string JsonFile = "tokenizer.json";
    private const int PadId = 0;
    private readonly SentencePieceTokenizer _tokenizer;
    private readonly int _eos;

    private T5SentencePieceTokenizer(SentencePieceTokenizer tokenizer, int eos, int vocabularySize)
    {
        _tokenizer = tokenizer;
        _eos = eos;
        VocabularySize = vocabularySize;
    }

    public int VocabularySize { get; }

    /// <summary>Reads a tokenizer folder (FLUX's <c>tokenizer_2/</c>): <c>spiece.model</c> when present, else <c>tokenizer.json</c>.</summary>
    public static T5SentencePieceTokenizer FromFolder(string folder)
    {
        var model = Path.Combine(folder, ModelFile);
        if (File.Exists(model)) return FromFile(model);
        var json = Path.Combine(folder, JsonFile);
        if (File.Exists(json)) return FromTokenizerJson(json);
        throw new FileNotFoundException($"The T5 tokenizer folder {folder} holds neither {ModelFile} nor {JsonFile}.", model);
    }

    public static T5SentencePieceTokenizer FromFile(string spieceModel) => FromModel(File.ReadAllBytes(spieceModel));

    public static T5SentencePieceTokenizer FromModel(byte[] model)
    {
        // T5's model has no beginning-of-sentence piece (bos_id = -1), which the library cannot take. Protobuf merges a
        // repeated embedded message into the first, so one more trainer_spec naming the unknown piece (2) as BOS fixes
        // that without touching the rest; no BOS is ever added.
        byte[] bosIsUnknown = [0x12, 0x03, 0xC8, 0x02, 0x02]; // field 2 (trainer_spec) { field 41 (bos_id) = 2 }
        return Create([.. model, .. bosIsUnknown], specialTokens: null);
    }

    public static T5SentencePieceTokenizer FromTokenizerJson(string path) => FromJson(File.ReadAllText(path));

    /// <summary>
    /// Reads the text of a Hugging Face <c>tokenizer.json</c> (T5TokenizerFast), converted in memory to the
    /// <c>spiece.model</c> form. Its added tokens (<c>&lt;extra_id_N&gt;</c>, <c>&lt;/s&gt;</c>, …) are matched in the
    /// text as Hugging Face does; the <c>spiece.model</c> form leaves them to the pieces, as SentencePiece does.
    /// </summary>
    public static T5SentencePieceTokenizer FromJson(string json)
    {
        var (model, addedTokens) = T5TokenizerJson.ToSentencePieceModel(json);
        return Create(model, addedTokens);
    }

    private static T5SentencePieceTokenizer Create(byte[] model, IReadOnlyDictionary<string, int>? specialTokens)
    {
        var tokenizer = SentencePieceTokenizer.Create(new MemoryStream(model), addBeginningOfSentence: false, addEndOfSentence: false, specialTokens);
        return new T5SentencePieceTokenizer(tokenizer, tokenizer.EndOfSentenceId, tokenizer.Vocabulary.Count);
    }

    public long[] Encode(string text, int length)
    {
        // SentencePiece (and Hugging Face's Unigram with fuse_unk) merge a run of unknown characters into one <unk>;
        // the library yields one per character, so runs are fused here.
        var unknown = _tokenizer.UnknownId;
        var pieces = new List<int>();
        foreach (var id in _tokenizer.EncodeToIds(text))
            if (id != unknown || pieces.Count == 0 || pieces[^1] != unknown) pieces.Add(id);
        var ids = new long[length];
        var kept = Math.Min(pieces.Count, length - 1);
        for (var i = 0; i < kept; i++) ids[i] = pieces[i];
        ids[kept] = _eos;
        for (var i = kept + 1; i < length; i++) ids[i] = PadId;
        return ids;
    }
}
