using Likeness.Engine.Captioning;
using Likeness.Engine.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Tests;

/// <summary>
/// The engine's Florence-2 against transformers' own Florence2ForConditionalGeneration: a tiny random network
/// (Data/florence2-tiny, made by make_reference.py on the device machine) whose outputs the reference computed in
/// float64 from the same float32 weights. The engine runs in float32, hence tolerances of about 1e-4 of each
/// output's scale.
/// </summary>
public sealed class Florence2ParityTests
{
    internal static readonly string Folder = Path.Combine(AppContext.BaseDirectory, "Data", "florence2-tiny");

    internal static Florence2Model LoadTiny()
    {
        var model = new Florence2Model(Florence2Params.FromFile(Path.Combine(Folder, "config.json")));
        using var source = new SafeTensorsSource([Path.Combine(Folder, "model.safetensors")]);
        Florence2Checkpoint.Load(model, source, "model.safetensors");
        model.eval();
        return model;
    }

    internal static Tensor Reference(string key, ScalarType? type = null)
    {
        using var reader = SafeTensorsFile.Open(Path.Combine(Folder, "reference.safetensors"));
        return reader.Read(key, type);
    }

    /// <summary>max |actual − expected| / max |expected|, in double.</summary>
    internal static double RelativeError(Tensor actual, Tensor expected)
    {
        Assert.Equal(expected.shape, actual.shape);
        using var a = actual.to_type(ScalarType.Float64);
        using var diff = (a - expected).abs().max();
        using var scale = expected.abs().max();
        Assert.True(scale.item<double>() > 0.1, "the reference output is not trivially small");
        return diff.item<double>() / scale.item<double>();
    }

    private static Tensor PromptIds(Tensor inputIds, int imageTokens) => inputIds[.., imageTokens..];

    [Fact]
    public void Vision_tower_matches_the_reference()
    {
        using var model = LoadTiny();
        using var _ = no_grad();
        using var pixels = Reference("pixel_values", ScalarType.Float32);
        using var expected = Reference("vision_features");
        using var actual = model.VisionFeatures(pixels);
        Assert.True(RelativeError(actual, expected) < 1e-5, $"relative error {RelativeError(actual, expected)}");
    }

    [Fact]
    public void Projected_image_features_match_the_reference()
    {
        using var model = LoadTiny();
        using var _ = no_grad();
        using var pixels = Reference("pixel_values", ScalarType.Float32);
        using var expected = Reference("image_features");
        using var actual = model.ImageFeatures(pixels);
        Assert.Equal(model.Params.ImageTokens(72, 56), (int)actual.shape[1]);
        Assert.True(RelativeError(actual, expected) < 1e-5, $"relative error {RelativeError(actual, expected)}");
    }

    /// <summary>The tiny model and its encoder states for the reference's pictures and prompts (row 1 padded), with the mask.</summary>
    internal static (Florence2Model Model, Tensor States, Tensor Mask) EncodedReference()
    {
        var model = LoadTiny();
        using var _ = no_grad();
        using var pixels = Reference("pixel_values", ScalarType.Float32);
        using var ids = Reference("input_ids");
        var mask = Reference("attention_mask");
        var states = model.Encode(pixels, PromptIds(ids, model.Params.ImageTokens(72, 56)), mask);
        return (model, states, mask);
    }

    [Fact]
    public void Encoder_states_and_logits_match_the_reference_with_a_padded_row()
    {
        var (model, encoded, mask) = EncodedReference();
        using var _ = model; using var __ = encoded; using var ___ = mask;
        using var noGrad = no_grad();
        using var expectedStates = Reference("encoder_last_hidden_state");
        // The padded position's state is computed too (it attends to the rest), so the whole tensor is compared.
        Assert.True(RelativeError(encoded, expectedStates) < 1e-5, $"encoder relative error {RelativeError(encoded, expectedStates)}");

        using var decoderIds = Reference("decoder_input_ids");
        using var cache = new BartCache(model.Params.Text.DecoderLayers);
        using var logits = model.Language.Decode(decoderIds, encoded, mask, cache);
        using var expectedLogits = Reference("logits");
        Assert.True(RelativeError(logits, expectedLogits) < 1e-5, $"logits relative error {RelativeError(logits, expectedLogits)}");
    }

    [Fact]
    public void Decoding_a_step_at_a_time_with_the_cache_gives_the_full_pass_logits()
    {
        var (model, encoded, mask) = EncodedReference();
        using var _ = model; using var __ = encoded; using var ___ = mask;
        using var noGrad = no_grad();
        using var decoderIds = Reference("decoder_input_ids");
        using var cache = new BartCache(model.Params.Text.DecoderLayers);
        var steps = Enumerable.Range(0, (int)decoderIds.shape[1]).Select(t => model.Language.Decode(decoderIds[.., t..(t + 1)], encoded, mask, cache)).ToList();
        using var stepwise = cat(steps, 1);
        steps.ForEach(s => s.Dispose());
        using var expected = Reference("logits");
        Assert.True(RelativeError(stepwise, expected) < 1e-5, $"relative error {RelativeError(stepwise, expected)}");
    }
}
