using Likeness.Imaging;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;
using static Likeness.Engine.Scalars;

namespace Likeness.Engine.Imaging;

public enum EncodedImageFormat { Png, Jpeg, Webp }

/// <summary>Pixels ↔ tensors: [3, H, W] fp32 in [−1, 1], RGB.</summary>
public static class ImageTensors
{
    private static readonly Scalar HalfByte = 127.5.ToScalar();
    private static readonly Scalar OneDouble = 1.0.ToScalar();
    private static readonly Scalar MinusOne = (-1).ToScalar();

    /// <summary>Decodes jpg/png/webp, applies the EXIF orientation, centre-crops to the target aspect and resizes.</summary>
    public static Tensor FromEncoded(byte[] encoded, int width, int height)
    {
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data) ?? throw new InvalidDataException("The image cannot be decoded.");
        using var decoded = SKBitmap.Decode(codec) ?? throw new InvalidDataException("The image cannot be decoded.");
        using var upright = ExifOrientation.Upright(decoded, codec.EncodedOrigin);
        return FromBitmap(upright, width, height);
    }

    public static Tensor FromBitmap(SKBitmap source, int width, int height)
    {
        if (source.Width == width && source.Height == height)
        {
            // Already the right size: take the pixels as they are, no resampling.
            using var rgbaCopy = source.Copy(SKColorType.Rgba8888);
            return ToTensor(rgbaCopy.GetPixelSpan().ToArray(), width, height);
        }

        // Centre crop to the target aspect ratio, then resample.
        var targetAspect = (double)width / height;
        var sourceAspect = (double)source.Width / source.Height;
        var crop = sourceAspect > targetAspect
            ? SKRectI.Create((int)((source.Width - source.Height * targetAspect) / 2), 0, (int)(source.Height * targetAspect), source.Height)
            : SKRectI.Create(0, (int)((source.Height - source.Width / targetAspect) / 2), source.Width, (int)(source.Width / targetAspect));
        using var surface = SKSurface.Create(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        surface.Canvas.Clear(SKColors.White);
        using (var image = SKImage.FromBitmap(source))
            surface.Canvas.DrawImage(image, crop, new SKRect(0, 0, width, height), new SKSamplingOptions(SKCubicResampler.Mitchell));
        using var pixmap = surface.PeekPixels();
        return ToTensor(pixmap.GetPixelSpan().ToArray(), width, height);
    }

    /// <summary>RGBA bytes, row-major → [3, H, W] in [−1, 1].</summary>
    private static Tensor ToTensor(byte[] bytes, int width, int height)
    {
        using var scope = NewDisposeScope();
        var rgba = tensor(bytes, [height, width, 4]).to_type(ScalarType.Float32);
        var rgb = rgba[.., .., ..3].permute(2, 0, 1).contiguous().div(HalfByte).sub(OneDouble);
        return rgb.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// [3, H, W] in [−1, 1] → encoded bytes (values clamped, rounded to 8 bits). PNG is written by StbImageWriteSharp,
    /// fully managed: SkiaSharp's first use in a process sets up its default font manager, which reads every font on
    /// the machine (≈ 0.25 s of a one-image <c>engine generate</c>); JPEG and WebP still go through SkiaSharp.
    /// </summary>
    public static byte[] Encode(Tensor image, EncodedImageFormat format, int quality = 95)
    {
        byte[] pixels;
        int height, width;
        using (var scope = NewDisposeScope())
        {
            var hwc = image.detach().to_type(ScalarType.Float32).clamp(MinusOne, One).add(One, One).mul(HalfByte).round().to_type(ScalarType.Byte).permute(1, 2, 0).contiguous().cpu();
            (height, width) = ((int)hwc.shape[0], (int)hwc.shape[1]);
            pixels = hwc.bytes.ToArray();
        }
        if (format == EncodedImageFormat.Png)
        {
            using var png = new MemoryStream();
            new StbImageWriteSharp.ImageWriter().WritePng(pixels, width, height, StbImageWriteSharp.ColorComponents.RedGreenBlue, png);
            return png.ToArray();
        }
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var rgba = new byte[width * height * 4];
        for (long i = 0, j = 0; i < pixels.Length; i += 3, j += 4)
        {
            rgba[j] = pixels[i];
            rgba[j + 1] = pixels[i + 1];
            rgba[j + 2] = pixels[i + 2];
            rgba[j + 3] = 255;
        }
        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        using var encoded = bitmap.Encode(format == EncodedImageFormat.Jpeg ? SKEncodedImageFormat.Jpeg : SKEncodedImageFormat.Webp, quality);
        return encoded.ToArray();
    }
}
