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
    long InitSeed)
{
    /// <summary>The real architecture at small size, initialised from a fixed seed; base resolution 256 px.</summary>
    public static readonly FluxPreset Tiny = new("flux-tiny", FluxParams.Tiny, AutoEncoderParams.Tiny, T5Params.Tiny, ClipTextParams.Tiny,
        MaxT5Tokens: 128, BaseResolution: 256, ShiftSchedule: true, LearningRate: 1e-3, InitSeed: 20260425);

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
