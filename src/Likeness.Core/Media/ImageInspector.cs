using System.Security.Cryptography;
using SkiaSharp;

namespace Likeness.Core.Media;

public sealed record InspectedImage(string Format, int Width, int Height, string Sha256Hex);

/// <summary>
/// Judges an upload by its content, never by its name or declared type: magic bytes, then the size read from the
/// header (refused before any pixel is decoded), then a full decode.
/// </summary>
public static class ImageInspector
{
    public const long MaxBytes = 10L * 1024 * 1024;
    public const long MaxPixels = 50_000_000;
    public const int MinSide = 64;

    public static InspectedImage Inspect(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.LongLength > MaxBytes) throw new MediaValidationException("image_too_large", "The image is larger than 10 MiB.");
        var format = Sniff(bytes) ?? throw new MediaValidationException("unsupported_image", "The file is not a JPEG, PNG or WebP image.");

        if (ImageHeader.TryReadSize(bytes, format) is var (hw, hh) && (long)hw * hh > MaxPixels)
            throw new MediaValidationException("image_too_many_pixels", $"The image is {hw}×{hh}, over 50 megapixels.");

        using var data = SKData.CreateCopy(bytes);
        using var codec = SKCodec.Create(data)
            ?? throw new MediaValidationException("unsupported_image", $"The file starts like a {format.ToUpperInvariant()} image but cannot be read.");
        var info = codec.Info;
        if (info.Width <= 0 || info.Height <= 0)
            throw new MediaValidationException("unsupported_image", "The image has no size.");
        if ((long)info.Width * info.Height > MaxPixels)
            throw new MediaValidationException("image_too_many_pixels", $"The image is {info.Width}×{info.Height}, over 50 megapixels.");
        if (Math.Min(info.Width, info.Height) < MinSide)
            throw new MediaValidationException("image_too_small", $"The image is {info.Width}×{info.Height}; its shortest side must be at least {MinSide} px.");

        // A full decode: truncated or corrupt pixel data is refused here, not in the pipeline.
        using var bitmap = new SKBitmap(new SKImageInfo(info.Width, info.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var result = codec.GetPixels(bitmap.Info, bitmap.GetPixels());
        if (result is not (SKCodecResult.Success))
            throw new MediaValidationException("unsupported_image", $"The image data is damaged ({result}).");

        return new InspectedImage(format, info.Width, info.Height, Convert.ToHexStringLower(SHA256.HashData(bytes)));
    }

    /// <summary>jpeg, png or webp from the first bytes; null for anything else.</summary>
    public static string? Sniff(ReadOnlySpan<byte> b)
    {
        if (b.Length >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return "jpeg";
        if (b.Length >= 8 && b[..8].SequenceEqual(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A })) return "png";
        if (b.Length >= 12 && b[..4].SequenceEqual("RIFF"u8) && b[8..12].SequenceEqual("WEBP"u8)) return "webp";
        return null;
    }
}
