using System.Text;

namespace Likeness.Engine.Text;

/// <summary>Turns prompts into token ids for a text encoder; the real T5 and CLIP tokenizers plug in here.</summary>
public interface ITextTokenizer
{
    int VocabularySize { get; }
    /// <summary>Exactly <paramref name="length"/> ids: truncated, terminated and padded as the encoder expects.</summary>
    long[] Encode(string text, int length);
}

/// <summary>
/// Byte-level tokenizer for the tiny encoders: each UTF-8 byte b is the id b + 3; 0 = pad, 1 = end of sequence,
/// 2 = unknown. T5 style: bytes, then end, padded with pad.
/// </summary>
public sealed class ByteT5Tokenizer : ITextTokenizer
{
    public const long Pad = 0, Eos = 1, Offset = 3;
    public int VocabularySize => 259;

    public long[] Encode(string text, int length)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var ids = new long[length];
        var n = Math.Min(bytes.Length, length - 1);
        for (var i = 0; i < n; i++) ids[i] = bytes[i] + Offset;
        ids[n] = Eos;
        return ids; // the rest stays Pad (0)
    }
}

/// <summary>
/// Byte-level tokenizer in CLIP's shape: start id, bytes (b + 3), end id, padded with the end id. The end id is
/// the largest id, so the pooled position is the first argmax, as with CLIP's own vocabulary.
/// </summary>
public sealed class ByteClipTokenizer : ITextTokenizer
{
    public const long Bos = 259, Eos = 260;
    public int VocabularySize => 261;

    public long[] Encode(string text, int length)
    {
        var bytes = Encoding.UTF8.GetBytes(text.ToLowerInvariant());
        var ids = new long[length];
        Array.Fill(ids, Eos);
        ids[0] = Bos;
        var n = Math.Min(bytes.Length, length - 2);
        for (var i = 0; i < n; i++) ids[i + 1] = bytes[i] + ByteT5Tokenizer.Offset;
        return ids;
    }
}
