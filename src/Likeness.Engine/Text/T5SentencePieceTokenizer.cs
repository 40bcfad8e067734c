using Microsoft.ML.Tokenizers;

namespace Likeness.Engine.Text;

/// <summary>
/// T5's SentencePiece unigram tokenizer (<c>spiece.model</c>) through Microsoft.ML.Tokenizers: pieces, then the end
/// token, truncated to the length (the end token kept) and padded with the pad id 0, as FLUX's T5 tokenizer does.
/// </summary>
public sealed class T5SentencePieceTokenizer : ITextTokenizer
{
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

    public static T5SentencePieceTokenizer FromFile(string spieceModel) => FromModel(File.ReadAllBytes(spieceModel));

    public static T5SentencePieceTokenizer FromFolder(string folder) => FromFile(Path.Combine(folder, "spiece.model"));

    public static T5SentencePieceTokenizer FromModel(byte[] model)
    {
        // T5's model has no beginning-of-sentence piece (bos_id = -1), which the library cannot take. Protobuf merges a
        // repeated embedded message into the first, so one more trainer_spec naming the unknown piece (2) as BOS fixes
        // that without touching the rest; no BOS is ever added.
        byte[] bosIsUnknown = [0x12, 0x03, 0xC8, 0x02, 0x02]; // field 2 (trainer_spec) { field 41 (bos_id) = 2 }
        var patched = model.Concat(bosIsUnknown).ToArray();
        var tokenizer = SentencePieceTokenizer.Create(new MemoryStream(patched), addBeginningOfSentence: false, addEndOfSentence: false);
        var eos = tokenizer.EndOfSentenceId;
        return new T5SentencePieceTokenizer(tokenizer, eos, tokenizer.Vocabulary.Count);
    }

    public long[] Encode(string text, int length)
    {
        var pieces = _tokenizer.EncodeToIds(text);
        var ids = new long[length];
        var kept = Math.Min(pieces.Count, length - 1);
        for (var i = 0; i < kept; i++) ids[i] = pieces[i];
        ids[kept] = _eos;
        for (var i = kept + 1; i < length; i++) ids[i] = PadId;
        return ids;
    }
}
