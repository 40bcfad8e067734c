using Likeness.Engine.Autoencoder;
using Likeness.Engine.Flux;
using Likeness.Engine.Text;

namespace Likeness.Engine;

/// <summary>A model family member: transformer, autoencoder and text encoders, with its sampling and training defaults.</summary>
public sealed record FluxPreset(
    string Name,
    FluxParams Transformer,
    AutoEncoderParams Autoencoder,
    T5Params T5,
    ClipTextParams Clip,
    int MaxT5Tokens,
    int BaseResolution,
    bool ShiftSchedule,
    double LearningRate,
    long InitSeed,
    bool Pretrained = false,
    bool ClassifierFreeGuidance = false)
{
    /// <summary>
    /// The real architecture at small size with the weights this project pretrained on composed emoji scenes
    /// (<c>likeness engine pretrain</c>, then tools/gpu-pretrain on a GPU), shipped beside the engine (<see cref="TinyWeights"/>). Base resolution 128 px:
    /// 64 image tokens keep a LoRA near a minute and an image near two seconds on two cores, and the emoji scenes it
    /// learned from read well at that size. Prompts up to 96 bytes. Its guidance is classifier-free (it learned the
    /// empty prompt by caption dropout, and no guidance distillation was done), so an image costs two passes a step.
    /// A LoRA learns at 5e-4: at 1e-3 (the rate before the GPU-pretrained base) it took its photos' background colours
    /// over the prompt's; at 5e-4 the subject is as recognisable and the backgrounds follow the prompt (bench/README.md).
    /// </summary>
    public static readonly FluxPreset Tiny = new("flux-tiny", FluxParams.Tiny, AutoEncoderParams.Tiny, T5Params.Tiny, ClipTextParams.Tiny,
        MaxT5Tokens: 96, BaseResolution: 128, ShiftSchedule: true, LearningRate: 5e-4, InitSeed: 20260425, Pretrained: true,
        ClassifierFreeGuidance: true);

    /// <summary>
    /// flux-tiny's networks as initialised from their fixed seed, untrained (base resolution 256 px): for tests that
    /// check the engine's arithmetic, and the starting point of the pretraining.
    /// </summary>
    public static readonly FluxPreset TinyRandom = Tiny with { MaxT5Tokens = 128, BaseResolution = 256, Pretrained = false, ClassifierFreeGuidance = false };

    /// <summary>The folder of the pretrained flux-tiny weights, copied beside the engine by the build.</summary>
    public static string TinyWeights => Path.Combine(AppContext.BaseDirectory, "weights", "flux-tiny");

    public static readonly FluxPreset Dev = new("flux-dev", FluxParams.Dev, AutoEncoderParams.Flux, T5Params.Xxl, ClipTextParams.Large,
        MaxT5Tokens: 512, BaseResolution: 1024, ShiftSchedule: true, LearningRate: 1e-4, InitSeed: 0);

    public static readonly FluxPreset Schnell = new("flux-schnell", FluxParams.Schnell, AutoEncoderParams.Flux, T5Params.Xxl, ClipTextParams.Large,
        MaxT5Tokens: 256, BaseResolution: 1024, ShiftSchedule: false, LearningRate: 1e-4, InitSeed: 0);

    public static FluxPreset ByName(string name) => name switch
    {
        "flux-tiny" or "tiny" => Tiny,
        "flux-dev" or "dev" => Dev,
        "flux-schnell" or "schnell" => Schnell,
        _ => throw new ArgumentException($"Unknown preset '{name}': flux-tiny, flux-dev or flux-schnell."),
    };

    public bool IsTiny => Name == Tiny.Name;
}
