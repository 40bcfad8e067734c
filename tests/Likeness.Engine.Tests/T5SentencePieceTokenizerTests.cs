using System.Text;
using System.Text.Json;
using Likeness.Engine.Text;

namespace Likeness.Engine.Tests;

public sealed class T5SentencePieceTokenizerTests
{
    /// <summary>The pieces of both fixtures; type: 1 normal, 2 unknown, 3 control.</summary>
    private static readonly (string Piece, float Score, int Type)[] Pieces =
    [
        ("<pad>", 0, 3), ("</s>", 0, 3), ("<unk>", 0, 2), ("▁a", -1, 1), ("▁photo", -2, 1), ("▁of", -2, 1), ("▁", -3, 1),
        ("a", -4, 1), ("b", -4, 1), ("▁ph", -5, 1), ("oto", -5, 1), ("o", -6, 1), ("p", -6, 1), ("h", -6, 1), ("t", -6, 1), ("f", -6, 1),
    ];

    /// <summary>
    /// A minimal spiece.model written by hand in SentencePiece's protobuf layout, shaped like T5's (no BOS). Kept apart
    /// from the product's tokenizer.json conversion on purpose: it is the reference that conversion is checked against.
    /// </summary>
    internal static byte[] Model()
    {
        static void Varint(List<byte> o, ulong v) { while (v >= 0x80) { o.Add((byte)(v | 0x80)); v >>= 7; } o.Add((byte)v); }
        static void Key(List<byte> o, int field, int wire) => Varint(o, (ulong)((field << 3) | wire));
        static void Bytes(List<byte> o, int field, byte[] s) { Key(o, field, 2); Varint(o, (ulong)s.Length); o.AddRange(s); }
        static void Int(List<byte> o, int field, long v) { Key(o, field, 0); Varint(o, unchecked((ulong)v)); }
        static void Float(List<byte> o, int field, float f) { Key(o, field, 5); o.AddRange(BitConverter.GetBytes(f)); }
        var model = new List<byte>();
        foreach (var (piece, score, type) in Pieces)
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
    public void A_run_of_unknown_characters_is_one_unknown_token_as_in_sentencepiece()
    {
        var tokenizer = T5SentencePieceTokenizer.FromModel(Model());
        // "▁ZZé" is ▁ then one <unk> for the whole run; "Z b Z" keeps two, as a known piece stands between them.
        Assert.Equal([4L, 6, 2, 1, 0], tokenizer.Encode("photo ZZé", 5));
        Assert.Equal([6L, 2, 6, 8, 6, 2, 1], tokenizer.Encode("Z b Z", 7));
    }

    [Fact]
    public void Truncates_keeping_the_end_token()
    {
        var tokenizer = T5SentencePieceTokenizer.FromModel(Model());
        Assert.Equal([4L, 5, 1], tokenizer.Encode("photo of ab", 3));
    }

    // FLUX.1-dev's tokenizer_2/tokenizer.json pipeline: Precompiled (here with an empty charsmap) then runs of spaces
    // collapsed; words split on whitespace, each prefixed with ▁.
    private const string T5Normalizer =
        """{"type":"Sequence","normalizers":[{"type":"Precompiled","precompiled_charsmap":""},{"type":"Replace","pattern":{"Regex":" {2,}"},"content":" "}]}""";
    private const string T5PreTokenizer =
        """{"type":"Sequence","pretokenizers":[{"type":"WhitespaceSplit"},{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true}]}""";

    /// <summary>
    /// The same tokenizer in Hugging Face's tokenizer.json form (T5TokenizerFast), written by hand, with two extra ids
    /// appended the way T5 numbers them (<c>&lt;extra_id_1&gt;</c> = 16, <c>&lt;extra_id_0&gt;</c> = 17).
    /// </summary>
    private static string Json(string normalizer = T5Normalizer, string preTokenizer = T5PreTokenizer)
    {
        var vocab = Pieces.Select(p => (p.Piece, p.Score)).Append(("<extra_id_1>", 0)).Append(("<extra_id_0>", 0)).ToArray();
        var added = new[] { 0, 1, 2, 16, 17 }.Select(id => new
        {
            id, content = vocab[id].Piece, single_word = false, lstrip = false, rstrip = false, normalized = false, special = true,
        });
        return $$$"""
            {"version":"1.0","truncation":null,"padding":null,"added_tokens":{{{JsonSerializer.Serialize(added)}}},
             "normalizer":{{{normalizer}}},"pre_tokenizer":{{{preTokenizer}}},
             "post_processor":{"type":"TemplateProcessing","single":[{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"</s>","type_id":0}}]},
             "decoder":{"type":"Metaspace","replacement":"▁","prepend_scheme":"always","split":true},
             "model":{"type":"Unigram","unk_id":2,"vocab":{{{JsonSerializer.Serialize(vocab.Select(v => new object[] { v.Piece, v.Score }))}}},"byte_fallback":false}}
            """;
    }

    /// <summary>
    /// A precompiled_charsmap as SentencePiece stores one: the byte size of a darts-clone double-array trie over the
    /// rules' UTF-8 keys, the trie's 32-bit units, then the NUL-terminated replacements its values point at. Each trie
    /// node here gets its own 256-unit block, so the child for byte b sits at block start + b: a unit holds its byte
    /// (bits 0–7), a has-value flag (bit 8) and the XOR offset from itself to its block (bits 10+); slot 0 of the block
    /// holds the value, with bit 31 set. The root is unit 0.
    /// </summary>
    private static byte[] Charsmap(params (string From, string To)[] rules)
    {
        var units = new List<uint>(new uint[256]);
        var blocks = new Dictionary<int, int>();
        int BlockOf(int node)
        {
            if (blocks.TryGetValue(node, out var start)) return start;
            start = units.Count;
            units.AddRange(new uint[256]);
            units[node] |= (uint)(node ^ start) << 10;
            return blocks[node] = start;
        }
        var replacements = new List<byte>();
        foreach (var (from, to) in rules)
        {
            var node = 0;
            foreach (var b in Encoding.UTF8.GetBytes(from)) units[node = BlockOf(node) + b] |= b;
            units[node] |= 1u << 8;
            units[BlockOf(node)] = 0x8000_0000u | (uint)replacements.Count;
            replacements.AddRange([.. Encoding.UTF8.GetBytes(to), 0]);
        }
        return [.. BitConverter.GetBytes(units.Count * 4), .. units.SelectMany(BitConverter.GetBytes), .. replacements];
    }

    [Theory]
    [InlineData("photo of ab Z")]
    [InlineData("a photo of a b")]
    [InlineData("photoof")]
    [InlineData(" ab  of   photo ")]
    [InlineData("")]
    public void Json_form_gives_the_same_ids_as_the_spiece_model_form(string text)
    {
        Assert.Equal(T5SentencePieceTokenizer.FromModel(Model()).Encode(text, 12), T5SentencePieceTokenizer.FromJson(Json()).Encode(text, 12));
    }

    [Fact]
    public void Json_form_segments_collapses_spaces_truncates_and_pads_like_t5()
    {
        var tokenizer = T5SentencePieceTokenizer.FromJson(Json());
        Assert.Equal([4L, 5, 3, 8, 6, 2, 1, 0, 0, 0], tokenizer.Encode("photo of ab Z", 10)); // ▁photo ▁of ▁a b ▁ <unk> </s> <pad>…
        Assert.Equal([4L, 5, 3, 8, 1, 0], tokenizer.Encode("  photo   of  ab ", 6));
        Assert.Equal([4L, 5, 1], tokenizer.Encode("photo of ab", 3));
    }

    [Fact]
    public void Json_form_matches_added_tokens_in_the_text_as_hugging_face_does()
    {
        var tokenizer = T5SentencePieceTokenizer.FromJson(Json());
        // ▁a <extra_id_0> ▁ b <extra_id_1> </s>, then the appended </s> and a pad.
        Assert.Equal([3L, 17, 6, 8, 16, 1, 1, 0], tokenizer.Encode("a <extra_id_0> b<extra_id_1></s>", 8));
    }

    [Fact]
    public void Json_form_applies_the_precompiled_charsmap()
    {
        // A bare Precompiled normalizer (no Replace): fullwidth ｐ and ｈ become p and h, a tab a space.
        var normalizer = $$"""{"type":"Precompiled","precompiled_charsmap":"{{Convert.ToBase64String(Charsmap(("ｐ", "p"), ("ｈ", "h"), ("\t", " ")))}}"}""";
        var tokenizer = T5SentencePieceTokenizer.FromJson(Json(normalizer));
        Assert.Equal([4L, 5, 3, 1], tokenizer.Encode("ｐｈoto\t of\ta", 4)); // ▁photo ▁of ▁a </s>
        Assert.Equal([6L, 2, 13, 10, 1], T5SentencePieceTokenizer.FromJson(Json()).Encode("ｐhoto", 5)); // no charsmap: ▁ <unk> h oto
    }

    [Fact]
    public void Json_form_reads_the_older_bare_metaspace_shape()
    {
        var tokenizer = T5SentencePieceTokenizer.FromJson(Json("null", """{"type":"Metaspace","replacement":"▁","add_prefix_space":true}"""));
        Assert.Equal([4L, 5, 3, 8, 6, 2, 1, 0], tokenizer.Encode("photo of ab Z", 8));
    }

    [Fact]
    public void Json_form_refuses_a_pipeline_t5_does_not_use()
    {
        Assert.Throws<NotSupportedException>(() => T5SentencePieceTokenizer.FromJson(Json("""{"type":"Lowercase"}""")));
    }

    [Fact]
    public void Folder_prefers_spiece_model_and_falls_back_to_tokenizer_json()
    {
        var both = Directory.CreateTempSubdirectory().FullName;
        File.WriteAllBytes(Path.Combine(both, "spiece.model"), Model());
        File.WriteAllText(Path.Combine(both, "tokenizer.json"), "not json: reading it would throw");
        Assert.Equal([4L, 5, 1], T5SentencePieceTokenizer.FromFolder(both).Encode("photo of", 3));

        var jsonOnly = Directory.CreateTempSubdirectory().FullName;
        File.WriteAllText(Path.Combine(jsonOnly, "tokenizer.json"), Json());
        Assert.Equal([17L, 4, 1], T5SentencePieceTokenizer.FromFolder(jsonOnly).Encode("<extra_id_0>photo", 3)); // only the JSON form knows extra ids
    }

    [Fact]
    public void Folder_without_either_file_names_both()
    {
        var empty = Directory.CreateTempSubdirectory().FullName;
        var error = Assert.Throws<FileNotFoundException>(() => T5SentencePieceTokenizer.FromFolder(empty));
        Assert.Contains("spiece.model", error.Message);
        Assert.Contains("tokenizer.json", error.Message);
    }
}
