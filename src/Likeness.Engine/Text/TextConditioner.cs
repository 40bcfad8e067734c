using Likeness.Engine.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Text;

/// <summary>
/// FLUX's conditioning: the T5 sequence (txt [B, T, context]) and CLIP's pooled vector (y [B, vec]), computed under
/// no_grad in the encoders' dtype.
/// </summary>
public sealed class TextConditioner : IDisposable
{
    private readonly T5Encoder _t5;
    private readonly ClipTextModel _clip;
    private readonly ITextTokenizer _t5Tokenizer;
    private readonly ITextTokenizer _clipTokenizer;
    private Device _device;

    public int MaxT5Tokens { get; }

    public TextConditioner(T5Encoder t5, ClipTextModel clip, ITextTokenizer t5Tokenizer, ITextTokenizer clipTokenizer, int maxT5Tokens, Device? device = null)
    {
        _t5 = t5;
        _clip = clip;
        _t5Tokenizer = t5Tokenizer;
        _clipTokenizer = clipTokenizer;
        MaxT5Tokens = maxT5Tokens;
        _device = device ?? CPU;
        _t5.eval();
        _clip.eval();
    }

    /// <summary>Moves both encoders (in place) to <paramref name="device"/>; prompts are then encoded there.</summary>
    public void MoveTo(Device device)
    {
        _t5.to(device);
        _clip.to(device);
        _device = device;
        DropEmpty();
    }

    private (Tensor Txt, Tensor Vec)? _empty;

    /// <summary>
    /// The empty prompt's encoding, computed once (classifier-free guidance needs it for every image); the caller owns
    /// the aliases it gets, as with <see cref="Encode"/>.
    /// </summary>
    public (Tensor Txt, Tensor Vec) EncodeEmpty()
    {
        if (_empty is null)
        {
            var (txt, vec) = Encode([""]);
            _empty = (txt.DetachFromDisposeScope(), vec.DetachFromDisposeScope());
        }
        return (_empty.Value.Txt.alias(), _empty.Value.Vec.alias());
    }

    private void DropEmpty()
    {
        _empty?.Txt.Dispose();
        _empty?.Vec.Dispose();
        _empty = null;
    }

    public (Tensor Txt, Tensor Vec) Encode(IReadOnlyList<string> prompts)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var t5Ids = tensor(prompts.SelectMany(p => _t5Tokenizer.Encode(p, MaxT5Tokens)).ToArray(), [prompts.Count, MaxT5Tokens], device: _device);
        var clipLength = _clip.Params.MaxPositions;
        var clipIds = tensor(prompts.SelectMany(p => _clipTokenizer.Encode(p, clipLength)).ToArray(), [prompts.Count, clipLength], device: _device);
        var txt = _t5.forward(t5Ids);
        var vec = _clip.forward(clipIds);
        return (txt.MoveToOuterDisposeScope(), vec.MoveToOuterDisposeScope());
    }

    /// <summary>The tiny encoders with byte tokenizers, initialised deterministically from the seed.</summary>
    public static TextConditioner CreateTiny(long seed, int maxT5Tokens = 128, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        var (t5, clip) = CreateTinyEncoders(seed, device);
        return Tiny(t5.In(dtype), clip.In(dtype), maxT5Tokens, device);
    }

    /// <summary>The tiny encoders with the byte tokenizers they were made for.</summary>
    public static TextConditioner Tiny(T5Encoder t5, ClipTextModel clip, int maxT5Tokens, Device? device = null) =>
        new(t5, clip, new ByteT5Tokenizer(), new ByteClipTokenizer(), maxT5Tokens, device);

    /// <summary>The tiny T5 and CLIP, initialised deterministically from the seed (fp32, trainable).</summary>
    internal static (T5Encoder T5, ClipTextModel Clip) CreateTinyEncoders(long seed, Device? device = null)
    {
        var t5 = new T5Encoder(T5Params.Tiny, device);
        var clip = new ClipTextModel(ClipTextParams.Tiny, device);
        Initialize(t5, seed);
        Initialize(clip, seed + 1);
        return (t5, clip);
    }

    /// <summary>
    /// The full-size encoders from a model folder in the Hugging Face layout: <c>text_encoder/</c> (CLIP-L),
    /// <c>text_encoder_2/</c> (T5 v1.1, sharded), <c>tokenizer/</c> (CLIP BPE) and <c>tokenizer_2/</c> (T5
    /// SentencePiece), each loaded straight into <paramref name="dtype"/> on <paramref name="device"/>.
    /// </summary>
    public static TextConditioner Load(string folder, T5Params t5Params, ClipTextParams clipParams, int maxT5Tokens, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        var clipTokenizer = ClipBpeTokenizer.FromFolder(Path.Combine(folder, "tokenizer"));
        var t5Tokenizer = T5SentencePieceTokenizer.FromFolder(Path.Combine(folder, "tokenizer_2"));
        if (clipTokenizer.VocabularySize > clipParams.VocabSize || t5Tokenizer.VocabularySize > t5Params.VocabSize)
            throw new InvalidDataException(
                $"The tokenizers ({clipTokenizer.VocabularySize} CLIP, {t5Tokenizer.VocabularySize} T5 ids) do not fit the encoders ({clipParams.VocabSize}, {t5Params.VocabSize}).");
        T5Encoder? t5 = null;
        ClipTextModel? clip = null;
        try
        {
            clip = new ClipTextModel(clipParams, device, dtype);
            CheckpointFolder.Load(clip, Path.Combine(folder, "text_encoder"));
            t5 = new T5Encoder(t5Params, device, dtype);
            CheckpointFolder.Load(t5, Path.Combine(folder, "text_encoder_2"));
            return new TextConditioner(t5, clip, t5Tokenizer, clipTokenizer, maxT5Tokens, device);
        }
        catch
        {
            t5?.Dispose();
            clip?.Dispose();
            throw;
        }
    }

    private static void Initialize(nn.Module module, long seed) => SeededWeights.Fill(module, seed, (name, parameter) =>
        SeededWeights.NormsAndBiasesFixed(name, parameter,
            (n, w) => n.Contains("embedding") || n.StartsWith("shared", StringComparison.Ordinal) ? 0.5 : 1.0 / Math.Sqrt(w.shape[^1])));

    public void Dispose()
    {
        DropEmpty();
        _t5.Dispose();
        _clip.Dispose();
    }
}
