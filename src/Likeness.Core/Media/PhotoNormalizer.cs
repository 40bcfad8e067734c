using Likeness.Imaging;
using SkiaSharp;

namespace Likeness.Core.Media;

public sealed record NormalizedPhoto(byte[] Jpeg, int Width, int Height);

/// <summary>
/// Turns an accepted upload into a dataset photo: EXIF orientation applied, metadata dropped (the pixels are
/// re-encoded), alpha flattened onto white, longest side bounded, JPEG.
/// </summary>
public static class PhotoNormalizer
{
    public const int DefaultMaxSide = 1024;

    public static NormalizedPhoto Normalize(byte[] encoded, int maxSide = DefaultMaxSide, int quality = 92)
    {
        using var upright = DecodeUpright(encoded);
        var scale = Math.Min(1.0, (double)maxSide / Math.Max(upright.Width, upright.Height));
        var width = Math.Max(1, (int)Math.Round(upright.Width * scale));
        var height = Math.Max(1, (int)Math.Round(upright.Height * scale));

        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using (var image = SKImage.FromBitmap(upright))
        {
            canvas.DrawImage(image, new SKRect(0, 0, width, height), new SKSamplingOptions(SKCubicResampler.Mitchell));
        }
        using var snapshot = surface.Snapshot();
        using var jpeg = snapshot.Encode(SKEncodedImageFormat.Jpeg, quality);
        return new NormalizedPhoto(jpeg.ToArray(), width, height);
    }

    /// <summary>Decodes and rotates/flips by the EXIF orientation so that the pixels stand as the camera saw them.</summary>
    public static SKBitmap DecodeUpright(byte[] encoded)
    {
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data) ?? throw new MediaValidationException("unsupported_image", "The image cannot be read.");
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        var decoded = new SKBitmap(info);
        var result = codec.GetPixels(info, decoded.GetPixels());
        if (result != SKCodecResult.Success)
        {
            decoded.Dispose();
            throw new MediaValidationException("unsupported_image", $"The image data is damaged ({result}).");
        }
        if (codec.EncodedOrigin == SKEncodedOrigin.TopLeft) return decoded;
        using (decoded) return ExifOrientation.Upright(decoded, codec.EncodedOrigin);
    }
}
