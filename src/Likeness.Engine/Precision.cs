using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine;

/// <summary>
/// The engine's weight precision. As the reference runs FLUX: bf16 weights and activations on CUDA, with RMSNorm,
/// RoPE, softmax, the timestep embedding and the training loss computed in fp32 inside the layers; fp32 throughout
/// on the CPU unless bf16 is asked for (half the memory; faster only on CPUs with bf16 matrix instructions).
/// </summary>
public static class Precision
{
    private const string Auto = "auto", Fp32 = "fp32", Bf16 = "bf16";

    /// <summary>The dtype for a setting (<c>auto</c>, <c>fp32</c>, <c>bf16</c>) on a device.</summary>
    public static ScalarType For(Device device, string? setting) => setting?.ToLowerInvariant() switch
    {
        null or "" or Auto => device.type == DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.Float32,
        Fp32 => ScalarType.Float32,
        Bf16 => ScalarType.BFloat16,
        _ => throw new ArgumentException($"Unknown precision '{setting}': auto, fp32 or bf16."),
    };

    /// <summary>
    /// Converts a freshly built part of a network to <paramref name="dtype"/> in place. Networks convert part by part
    /// while they are built, so a full-size model never exists in fp32 on the device first.
    /// </summary>
    public static T In<T>(this T module, ScalarType dtype) where T : nn.Module
    {
        if (dtype != ScalarType.Float32) module.to(dtype);
        return module;
    }
}
