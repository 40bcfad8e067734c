using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Likeness.Engine.Text;

/// <summary>
/// Turns a Hugging Face <c>tokenizer.json</c> holding T5's SentencePiece unigram (what T5TokenizerFast saves) into the
/// SentencePiece ModelProto that <c>spiece.model</c> holds, so both forms are tokenized by the same Microsoft.ML.Tokenizers
/// code. The JSON pipeline maps onto the proto's normalizer: Precompiled → <c>precompiled_charsmap</c>, the
/// <c>" {2,}" → " "</c> Replace or a WhitespaceSplit → <c>remove_extra_whitespaces</c>, Metaspace → <c>add_dummy_prefix</c>
/// and <c>escape_whitespaces</c>. Shapes T5 files do not use are refused rather than tokenized differently.
/// </summary>
/// <remarks>
/// Microsoft.ML.Tokenizers 2.0.1 applies both <c>precompiled_charsmap</c> and <c>remove_extra_whitespaces</c> when it
/// encodes (checked by experiment; only its public <c>SentencePieceNormalizer.Normalize(string)</c> skips the charsmap,
/// and encoding does not use that), and its special-token list splits added tokens out of the text as Hugging Face does.
/// Not exactly equal, by construction: SentencePiece removes only extra U+0020 spaces, while WhitespaceSplit splits on
/// every Unicode space. T5's real charsmap (nmt_nfkc) already turns tabs, newlines and no-break spaces into U+0020, so
/// that difference shows only when there is no charsmap. Also, with a bare Metaspace and the Replace, Hugging Face keeps a
/// trailing space as a lone "▁" token, which SentencePiece drops.
/// </remarks>
internal static class T5TokenizerJson
{
    private const int Normal = 1, Unknown = 2, Control = 3; // ModelProto.SentencePiece.Type
    private const int Unigram = 1;                         // TrainerSpec.ModelType

    /// <summary>The ModelProto bytes, and the added tokens (content → id) that Hugging Face matches in raw text.</summary>
    public static (byte[] Model, Dictionary<string, int> AddedTokens) ToSentencePieceModel(string json)
    {
        using var document = JsonDocument.Parse(json);
        var root = document.RootElement;
        var model = root.GetProperty("model");
        if (model.GetProperty("type").GetString() != "Unigram")
            throw new NotSupportedException("tokenizer.json does not hold a Unigram model, so it is not T5's tokenizer.");
        if (model.TryGetProperty("byte_fallback", out var byteFallback) && byteFallback.ValueKind == JsonValueKind.True)
            throw new NotSupportedException("tokenizer.json's Unigram model uses byte fallback, which T5's does not.");
        var vocab = model.GetProperty("vocab").EnumerateArray().Select(e => (Piece: e[0].GetString()!, Score: e[1].GetSingle())).ToList();
        var unk = model.TryGetProperty("unk_id", out var unkId) && unkId.ValueKind == JsonValueKind.Number
            ? unkId.GetInt32() : throw new InvalidDataException("tokenizer.json's Unigram model names no unk_id.");
        var added = ReadAddedTokens(root, vocab);
        var (charsmap, collapsesSpaces) = ReadNormalizer(root);
        var (splitsOnWhitespace, addsPrefix) = ReadPreTokenizer(root);
        var controls = added.Where(a => a.Special).Select(a => a.Id).ToHashSet();
        var normalizer = new ProtoWriter().Bytes(2, charsmap).Int(3, addsPrefix ? 1 : 0)
            .Int(4, collapsesSpaces || splitsOnWhitespace ? 1 : 0).Int(5, 1);
        return (WriteModel(vocab, unk, controls, normalizer), added.ToDictionary(a => a.Content, a => a.Id));
    }

    /// <summary>The ModelProto: the pieces typed unknown, control (special added tokens) or normal, then the specs.</summary>
    private static byte[] WriteModel(List<(string Piece, float Score)> vocab, int unk, HashSet<int> controls, ProtoWriter normalizer)
    {
        var proto = new ProtoWriter();
        for (var i = 0; i < vocab.Count; i++)
            proto.Message(1, new ProtoWriter().String(1, vocab[i].Piece).Float(2, vocab[i].Score)
                .Int(3, i == unk ? Unknown : controls.Contains(i) ? Control : Normal));
        // No BOS in T5; naming the unknown piece as BOS satisfies the library and none is ever added (see FromModel).
        proto.Message(2, new ProtoWriter().Int(3, Unigram).Int(40, unk).Int(41, unk)
            .Int(42, IdOf(vocab, "</s>") ?? throw new InvalidDataException("tokenizer.json's vocabulary lacks </s>."))
            .Int(43, IdOf(vocab, "<pad>") ?? -1));
        proto.Message(3, normalizer);
        return proto.ToArray();
    }

    private static int? IdOf(List<(string Piece, float Score)> vocab, string piece)
    {
        var id = vocab.FindIndex(v => v.Piece == piece);
        return id < 0 ? null : id;
    }

    /// <summary>The added tokens; each must be the model's own piece at its id (T5's are), as the proto has no other place.</summary>
    private static List<(string Content, int Id, bool Special)> ReadAddedTokens(JsonElement root, List<(string Piece, float Score)> vocab)
    {
        if (!root.TryGetProperty("added_tokens", out var tokens) || tokens.ValueKind == JsonValueKind.Null) return [];
        var added = tokens.EnumerateArray()
            .Select(t => (Content: t.GetProperty("content").GetString()!, Id: t.GetProperty("id").GetInt32(),
                Special: t.TryGetProperty("special", out var s) && s.GetBoolean()))
            .ToList();
        foreach (var (content, id, _) in added)
            if (id < 0 || id >= vocab.Count || vocab[id].Piece != content)
                throw new InvalidDataException($"tokenizer.json's added token '{content}' (id {id}) is not the model's piece at that id.");
        return added;
    }

    /// <summary>The precompiled charsmap (empty when none) and whether runs of spaces collapse to one.</summary>
    private static (byte[] Charsmap, bool CollapsesSpaces) ReadNormalizer(JsonElement root)
    {
        byte[] charsmap = [];
        var collapses = false;
        foreach (var step in Steps(root, "normalizer", "normalizers"))
        {
            switch (step.GetProperty("type").GetString())
            {
                case "Precompiled":
                    charsmap = Convert.FromBase64String(step.GetProperty("precompiled_charsmap").GetString() ?? "");
                    break;
                case "Replace" when IsSpaceCollapse(step):
                    collapses = true;
                    break;
                case var other:
                    throw new NotSupportedException($"tokenizer.json's normalizer step '{other}' is not one T5 uses.");
            }
        }
        return (charsmap, collapses);
    }

    private static bool IsSpaceCollapse(JsonElement replace) =>
        replace.GetProperty("pattern").TryGetProperty("Regex", out var regex) && regex.GetString() == " {2,}"
        && replace.GetProperty("content").GetString() == " ";

    /// <summary>Whether words are split on whitespace (runs and ends dropped) and whether the ▁ prefix is added.</summary>
    private static (bool SplitsOnWhitespace, bool AddsPrefix) ReadPreTokenizer(JsonElement root)
    {
        var steps = Steps(root, "pre_tokenizer", "pretokenizers");
        var splits = false;
        string? scheme = null;
        foreach (var step in steps)
        {
            switch (step.GetProperty("type").GetString())
            {
                case "WhitespaceSplit": splits = true; break;
                case "Metaspace": scheme = PrependScheme(step); break;
                case var other: throw new NotSupportedException($"tokenizer.json's pre-tokenizer step '{other}' is not one T5 uses.");
            }
        }
        if (scheme is null) throw new NotSupportedException("tokenizer.json has no Metaspace pre-tokenizer, which T5's marks words with.");
        // After a WhitespaceSplit only "always" puts ▁ before every word, as SentencePiece's escaped spaces do.
        if (splits && scheme != "always")
            throw new NotSupportedException($"A WhitespaceSplit with Metaspace prepend_scheme '{scheme}' has no SentencePiece equivalent.");
        return (splits, scheme != "never");
    }

    /// <summary>Metaspace's prepend scheme; older files say <c>add_prefix_space</c> instead.</summary>
    private static string PrependScheme(JsonElement metaspace)
    {
        if (metaspace.TryGetProperty("replacement", out var replacement) && replacement.GetString() != "▁")
            throw new NotSupportedException($"Metaspace replacement '{replacement.GetString()}' is not SentencePiece's ▁.");
        if (metaspace.TryGetProperty("prepend_scheme", out var scheme)) return scheme.GetString()!;
        return metaspace.TryGetProperty("add_prefix_space", out var add) && !add.GetBoolean() ? "never" : "always";
    }

    /// <summary>The steps of a pipeline component that is absent, null, a single step, or a Sequence of steps.</summary>
    private static List<JsonElement> Steps(JsonElement root, string name, string listName)
    {
        if (!root.TryGetProperty(name, out var component) || component.ValueKind == JsonValueKind.Null) return [];
        return component.GetProperty("type").GetString() == "Sequence" ? [.. component.GetProperty(listName).EnumerateArray()] : [component];
    }

    /// <summary>Just enough of protobuf's wire format (varints, little-endian fixed32, length-delimited) for a ModelProto.</summary>
    private sealed class ProtoWriter
    {
        private readonly List<byte> _bytes = [];

        public byte[] ToArray() => [.. _bytes];

        public ProtoWriter Int(int field, long value)
        {
            Key(field, 0);
            Varint(unchecked((ulong)value));
            return this;
        }

        public ProtoWriter Float(int field, float value)
        {
            Key(field, 5);
            Span<byte> bytes = stackalloc byte[4];
            BinaryPrimitives.WriteSingleLittleEndian(bytes, value);
            _bytes.AddRange(bytes);
            return this;
        }

        public ProtoWriter Bytes(int field, ReadOnlySpan<byte> value)
        {
            Key(field, 2);
            Varint((ulong)value.Length);
            _bytes.AddRange(value);
            return this;
        }

        public ProtoWriter String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

        public ProtoWriter Message(int field, ProtoWriter message) => Bytes(field, message.ToArray());

        private void Key(int field, int wireType) => Varint((ulong)((field << 3) | wireType));

        private void Varint(ulong value)
        {
            for (; value >= 0x80; value >>= 7) _bytes.Add((byte)(value | 0x80));
            _bytes.Add((byte)value);
        }
    }
}
