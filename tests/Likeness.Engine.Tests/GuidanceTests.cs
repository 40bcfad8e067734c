using Likeness.Engine.Flux;
using Likeness.Engine.Sampling;
using static TorchSharp.torch;

namespace Likeness.Engine.Tests;

/// <summary>Classifier-free guidance in the sampler: v = v_empty + g·(v_prompt − v_empty), both prompts in one batch.</summary>
public sealed class GuidanceTests
{
    [Fact]
    public void Guidance_one_follows_the_prompt_alone_and_zero_the_empty_prompt_alone()
    {
        using var model = FluxModel.CreateInitialized(FluxParams.Tiny, 11);
        using var generator = new Generator(4, device("cpu"));
        using var img = randn([1, 16, 64], generator: generator);
        using var txt = randn([1, 8, 128], generator: generator);
        using var vec = randn([1, 128], generator: generator);
        using var emptyTxt = randn([1, 8, 128], generator: generator);
        using var emptyVec = randn([1, 128], generator: generator);
        using var imgIds = FluxSampling.ImageIds(1, 8, 8);
        using var txtIds = FluxSampling.TextIds(1, 8);
        var schedule = FluxSampling.Schedule(4, 16);

        using var prompt = FluxSampling.Denoise(model, img, imgIds, txt, txtIds, vec, schedule, 3.5f);
        using var empty = FluxSampling.Denoise(model, img, imgIds, emptyTxt, txtIds, emptyVec, schedule, 3.5f);
        using var one = FluxSampling.Denoise(model, img, imgIds, txt, txtIds, vec, schedule, 3.5f, default, (emptyTxt, emptyVec), 1f);
        using var zero = FluxSampling.Denoise(model, img, imgIds, txt, txtIds, vec, schedule, 3.5f, default, (emptyTxt, emptyVec), 0f);
        using var three = FluxSampling.Denoise(model, img, imgIds, txt, txtIds, vec, schedule, 3.5f, default, (emptyTxt, emptyVec), 3f);

        Assert.True((one - prompt).abs().max().item<float>() < 1e-5);
        Assert.True((zero - empty).abs().max().item<float>() < 1e-5);
        Assert.True((three - prompt).abs().max().item<float>() > 1e-3, "guidance 3 should move away from the prompt's own flow");
    }
}
