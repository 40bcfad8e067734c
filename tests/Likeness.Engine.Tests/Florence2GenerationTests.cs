using Likeness.Engine.Captioning;
using TorchSharp;
using static TorchSharp.torch;
using static Likeness.Engine.Tests.Florence2ParityTests;

namespace Likeness.Engine.Tests;

/// <summary>
/// Decoding against transformers' <c>generate</c> on the tiny random Florence-2 (reference.json holds the settings):
/// the token sequences must be identical, the beam scores equal to float32 rounding.
/// </summary>
public sealed class Florence2GenerationTests
{
    private const int Eos = 2;

    private static (Florence2Model Model, Tensor States, Tensor Mask) Encoded() => EncodedReference();

    private static long[][] Rows(Tensor t) => Enumerable.Range(0, (int)t.shape[0]).Select(r => t[r].data<long>().ToArray()).ToArray();

    [Fact]
    public void Greedy_decoding_gives_the_reference_tokens()
    {
        var (model, states, mask) = Encoded();
        using var _ = model; using var __ = states; using var ___ = mask;
        var generated = Florence2Generation.Greedy(model, states, mask, new GenerationSettings(1, 12, false, 0, ForcedEosTokenId: Eos));
        using var expected = Reference("greedy_sequences");
        Assert.Equal(Rows(expected), generated.Sequences);
    }

    [Theory]
    [InlineData("beam3", 12, true)]
    [InlineData("beam3_long", 30, false)]
    public void Beam_search_gives_the_reference_tokens_and_scores(string tag, int maxNewTokens, bool earlyStopping)
    {
        var (model, states, mask) = Encoded();
        using var _ = model; using var __ = states; using var ___ = mask;
        var generated = Florence2Generation.BeamSearch(model, states, mask, new GenerationSettings(3, maxNewTokens, earlyStopping, 3, 1.0, Eos));
        using var expected = Reference($"{tag}_sequences");
        using var expectedScores = Reference($"{tag}_sequences_scores");
        Assert.Equal(Rows(expected), generated.Sequences);
        var scores = expectedScores.data<double>().ToArray();
        for (var i = 0; i < scores.Length; i++)
            Assert.True(Math.Abs(scores[i] - generated.Scores![i]) < 1e-4 * Math.Max(1, Math.Abs(scores[i])), $"score {i}: {generated.Scores![i]} vs {scores[i]}");
    }

    [Fact]
    public void The_same_photo_twice_gives_identical_tokens()
    {
        var (model, states, mask) = Encoded();
        using var _ = model; using var __ = states; using var ___ = mask;
        using var pixels = Reference("pixel_values", ScalarType.Float32);
        using var ids = Reference("input_ids");
        // The same photo in both rows of a fresh batch, encoded again: the rows and the two runs must agree exactly.
        using var twice = cat([pixels[..1], pixels[..1]], 0);
        using var prompt = cat([ids[..1], ids[..1]], 0)[.., model.Params.ImageTokens(72, 56)..];
        using var again = no_grad();
        using var encoded = model.Encode(twice, prompt, null);
        var settings = new GenerationSettings(3, 30, false, 3, 1.0, Eos);
        var first = Florence2Generation.BeamSearch(model, encoded, null, settings);
        var second = Florence2Generation.BeamSearch(model, encoded, null, settings);
        Assert.Equal(first.Sequences, second.Sequences);
        Assert.Equal(first.Sequences[0], first.Sequences[1]);
        Assert.Equal(first.Scores, second.Scores);
        using var expected = Reference("beam3_long_sequences");
        Assert.Equal(Rows(expected)[0].TakeWhile(t => t != 1), first.Sequences[0].TakeWhile(t => t != 1));
    }
}
