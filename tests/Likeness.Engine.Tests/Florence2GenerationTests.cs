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

    /// <summary>
    /// Beams that end before the limit (eos_reference.safetensors, make_eos_reference.py): the end token's embedding row,
    /// which is also its output row, scaled up so that the random network says &lt;/s&gt; — at once for one row or both,
    /// or never — exercising the finished hypotheses, early stopping and the padding of rows of unequal length.
    /// </summary>
    [Theory]
    [InlineData(1.5)]
    [InlineData(2.0)]
    [InlineData(3.0)]
    [InlineData(3.6)]
    [InlineData(3.7)]
    [InlineData(4.0)]
    public void Beams_that_end_early_give_the_reference_tokens_and_scores(double scale)
    {
        var (model, _, mask) = Encoded();
        using var __ = model; using var ___ = mask;
        using (no_grad())
        using (var s = scale.ToScalar())
            model.Language.EmbeddingWeight[2].mul_(s);
        using var noGrad = no_grad();
        using var pixels = Reference("pixel_values", ScalarType.Float32);
        using var ids = Reference("input_ids");
        using var states = model.Encode(pixels, ids[.., model.Params.ImageTokens(72, 56)..], mask);
        var name = $"eos{scale.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
        using var reader = Likeness.Engine.SafeTensors.SafeTensorsFile.Open(Path.Combine(Folder, "eos_reference.safetensors"));
        foreach (var (tag, settings) in new[]
        {
            ("greedy", new GenerationSettings(1, 20, false, 0, ForcedEosTokenId: Eos)),
            ("beam3", new GenerationSettings(3, 20, true, 3, 1.0, Eos)),
            ("beam3_noearly", new GenerationSettings(3, 20, false, 3, 1.0, Eos)),
        })
        {
            var generated = settings.NumBeams > 1
                ? Florence2Generation.BeamSearch(model, states, mask, settings)
                : Florence2Generation.Greedy(model, states, mask, settings);
            using var expected = reader.Read($"{name}_{tag}_sequences");
            Assert.True(Rows(expected).Select(r => string.Join(",", r)).SequenceEqual(generated.Sequences.Select(r => string.Join(",", r))),
                $"{name} {tag}: [{string.Join(" | ", generated.Sequences.Select(r => string.Join(",", r)))}]");
            if (settings.NumBeams == 1) continue;
            using var expectedScores = reader.Read($"{name}_{tag}_sequences_scores");
            var scores = expectedScores.data<double>().ToArray();
            for (var i = 0; i < scores.Length; i++)
                Assert.True(Math.Abs(scores[i] - generated.Scores![i]) < 1e-4 * Math.Max(1, Math.Abs(scores[i])), $"{name} {tag} score {i}: {generated.Scores![i]} vs {scores[i]}");
        }
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
