namespace Likeness.Core.Ports;

/// <summary>Generates images from a prompt with a trained adapter applied.</summary>
public interface IImageGenerator
{
    /// <summary>The base model's name as written into adapters and datasets (e.g. <c>flux-tiny</c>).</summary>
    string BaseModel { get; }

    /// <summary>Side of the square base area in pixels (1024 for FLUX.1, 256 for flux-tiny).</summary>
    int BaseResolution { get; }

    /// <summary>Makes one image. Same request ⇒ same bytes.</summary>
    Task<GeneratedImage> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken);
}

/// <param name="Width">Multiple of 16.</param>
/// <param name="Height">Multiple of 16.</param>
public sealed record GenerationRequest(
    string AdapterPath,
    string Prompt,
    int Width,
    int Height,
    long Seed,
    float LoraStrength,
    float GuidanceScale,
    int Steps,
    ImageFormat Format);

public enum ImageFormat { Png, Jpeg, Webp }

public sealed record GeneratedImage(byte[] Bytes, int Width, int Height, string ContentType);
