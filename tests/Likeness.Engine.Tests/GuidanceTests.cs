using Likeness.Engine.Flux;
using Likeness.Engine.Sampling;
using static TorchSharp.torch;

namespace Likeness.Engine.Tests;

/// <summary>
/// Classifier-free guidance in the sampler: v = v_empty + g·(v_prompt − v_empty), both prompts in one batch or, on a
/// CPU with a second core, as two passes side by side.
/// </summary>
public sealed class GuidanceTests
{
    /// <summary>A seeded random flux-tiny and random conditioning for a prompt and for the empty prompt.</summary>
    private sealed class Inputs : IDisposable
    {
        public Inputs(long seed)
        {
            Model = FluxModel.CreateInitialized(FluxParams.Tiny, seed);
            using var generator = new Generator((ulong)seed, device("cpu"));
            Img = randn([1, 16, 64], generator: generator);
            Txt = randn([1, 8, 128], generator: generator);
            Vec = randn([1, 128], generator: generator);
            EmptyTxt = randn([1, 8, 128], generator: generator);
            EmptyVec = randn([1, 128], generator: generator);
        }

        public FluxModel Model { get; }
        public Tensor Img { get; }
        public Tensor Txt { get; }
        public Tensor Vec { get; }
        public Tensor EmptyTxt { get; }
        public Tensor EmptyVec { get; }
        public Tensor ImgIds { get; } = FluxSampling.ImageIds(1, 8, 8);
        public Tensor TxtIds { get; } = FluxSampling.TextIds(1, 8);

        /// <summary>Denoises over <paramref name="steps"/> steps; with a scale, guided against the empty prompt.</summary>
        public Tensor Denoise(int steps, float? cfgScale = null, bool empty = false, bool split = false) => FluxSampling.Denoise(
            Model, Img, ImgIds, empty ? EmptyTxt : Txt, TxtIds, empty ? EmptyVec : Vec, FluxSampling.Schedule(steps, 16), 3.5f, default,
            cfgScale is null ? null : (EmptyTxt, EmptyVec), cfgScale ?? 1f, pairOnTwoThreads: split);

        public void Dispose()
        {
            foreach (var t in new[] { Img, Txt, Vec, EmptyTxt, EmptyVec, ImgIds, TxtIds }) t.Dispose();
            Model.Dispose();
        }
    }

    [Fact]
    public void Guidance_one_follows_the_prompt_alone_and_zero_the_empty_prompt_alone()
    {
        using var inputs = new Inputs(4);
        using var prompt = inputs.Denoise(4);
        using var empty = inputs.Denoise(4, empty: true);
        using var one = inputs.Denoise(4, cfgScale: 1f);
        using var zero = inputs.Denoise(4, cfgScale: 0f);
        using var three = inputs.Denoise(4, cfgScale: 3f);

        Assert.True((one - prompt).abs().max().item<float>() < 1e-5);
        Assert.True((zero - empty).abs().max().item<float>() < 1e-5);
        Assert.True((three - prompt).abs().max().item<float>() > 1e-3, "guidance 3 should move away from the prompt's own flow");
    }

    [Fact]
    public void The_pair_on_two_threads_gives_the_batched_pair()
    {
        using var inputs = new Inputs(5);
        using var batched = inputs.Denoise(6, cfgScale: 3.5f);
        using var split = inputs.Denoise(6, cfgScale: 3.5f, split: true);
        using var unguided = inputs.Denoise(6);

        Assert.True((split - batched).abs().max().item<float>() < 1e-5);
        Assert.True((split - unguided).abs().max().item<float>() > 1e-3, "the split pair should still be guided");
    }
}
