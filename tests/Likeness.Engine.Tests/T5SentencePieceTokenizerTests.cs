using System.Text;
using Likeness.Engine.Text;

namespace Likeness.Engine.Tests;

public sealed class T5SentencePieceTokenizerTests
{
    /// <summary>A minimal spiece.model written by hand in SentencePiece's protobuf layout, shaped like T5's (no BOS).</summary>
    internal static byte[] Model()
    {
        static void Varint(List<byte> o, ulong v) { while (v >= 0x80) { o.Add((byte)(v | 0x80)); v >>= 7; } o.Add((byte)v); }
        static void Key(List<byte> o, int field, int wire) => Varint(o, (ulong)((field << 3) | wire));
        static void Bytes(List<byte> o, int field, byte[] s) { Key(o, field, 2); Varint(o, (ulong)s.Length); o.AddRange(s); }
        static void Int(List<byte> o, int field, long v) { Key(o, field, 0); Varint(o, unchecked((ulong)v)); }
        static void Float(List<byte> o, int field, float f) { Key(o, field, 5); o.AddRange(BitConverter.GetBytes(f)); }
        var model = new List<byte>();
        // type: 1 normal, 2 unknown, 3 control
        (string Piece, float Score, int Type)[] pieces =
        [
            ("<pad>", 0, 3), ("</s>", 0, 3), ("<unk>", 0, 2), ("▁a", -1, 1), ("▁photo", -2, 1), ("▁of", -2, 1), ("▁", -3, 1),
            ("a", -4, 1), ("b", -4, 1), ("▁ph", -5, 1), ("oto", -5, 1), ("o", -6, 1), ("p", -6, 1), ("h", -6, 1), ("t", -6, 1), ("f", -6, 1),
        ];
        foreach (var (piece, score, type) in pieces)
        {
            var m = new List<byte>();
            Bytes(m, 1, Encoding.UTF8.GetBytes(piece));
            Float(m, 2, score);
            Int(m, 3, type);
            Bytes(model, 1, [.. m]);
        }
        var trainer = new List<byte>();
        Int(trainer, 3, 1);   // unigram
        Int(trainer, 40, 2);  // unk
        Int(trainer, 41, -1); // no bos, as T5
        Int(trainer, 42, 1);  // eos
        Int(trainer, 43, 0);  // pad
        Bytes(model, 2, [.. trainer]);
        var normalizer = new List<byte>();
        Bytes(normalizer, 1, "identity"u8.ToArray());
        Int(normalizer, 3, 1); Int(normalizer, 4, 1); Int(normalizer, 5, 1);
        Bytes(model, 3, [.. normalizer]);
        return [.. model];
    }

    [Fact]
    public void Segments_by_unigram_scores_then_ends_and_pads_like_t5()
    {
        var tokenizer = T5SentencePieceTokenizer.FromModel(Model());
        // "▁photo" (−2) beats "▁ph"+"oto" (−10); "▁ab" is "▁a"+"b"; unknown "Z" is <unk> after a bare "▁".
        Assert.Equal([4L, 5, 3, 8, 6, 2, 1, 0, 0, 0], tokenizer.Encode("photo of ab Z", 10)); // ▁photo ▁of ▁a b ▁ <unk> </s> <pad>…
    }

    [Fact]
    public void Truncates_keeping_the_end_token()
    {
        var tokenizer = T5SentencePieceTokenizer.FromModel(Model());
        Assert.Equal([4L, 5, 1], tokenizer.Encode("photo of ab", 3));
    }
}
