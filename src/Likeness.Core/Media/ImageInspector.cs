using System.Buffers;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using SkiaSharp;

namespace Likeness.Core.Media;

public sealed record InspectedImage(string Format, int Width, int Height, string Sha256Hex);

/// <summary>
/// Judges an upload by its content, never by its name or declared type: magic bytes, a PNG's chunk structure, then
/// the size read from the header (refused before any pixel is decoded), then a full decode. The file is read from
/// disk as the decoder goes and decoded a strip of rows at a time, so inspecting a 12-megapixel photo holds a few
/// rows, not the file and a 48 MB bitmap (issue #11: memory while clients upload).
/// </summary>
public static class ImageInspector
{
    public const long MaxBytes = 10L * 1024 * 1024;
    public const long MaxPixels = 50_000_000;
    public const int MinSide = 64;
    /// <summary>The header bytes read for the format and size; a JPEG's frame header past them is left to the decoder.</summary>
    private const int HeadBytes = 256 * 1024;
    /// <summary>Rows decoded at once: a strip of a few MB at most, for the widest accepted image.</summary>
    private const int StripRows = 16;
    /// <summary>Formats Skia cannot decode by rows (WebP, interlaced PNG) are decoded scaled down to about this many pixels where the codec can.</summary>
    private const long ScaledDecodePixels = 1_000_000;

    public static InspectedImage Inspect(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 64 * 1024);
        if (file.Length > MaxBytes) throw new MediaValidationException(MediaCodes.TooLarge, "The image is larger than 10 MiB.");
        var head = ArrayPool<byte>.Shared.Rent(HeadBytes);
        string format;
        try
        {
            var read = file.ReadAtLeast(head.AsSpan(0, HeadBytes), HeadBytes, throwOnEndOfStream: false);
            var bytes = head.AsSpan(0, read);
            format = Sniff(bytes) ?? throw new MediaValidationException(MediaCodes.Unsupported, "The file is not a JPEG, PNG or WebP image.");
            if (format == "png") PngChunks.Check(file);
            if (ImageHeader.TryReadSize(bytes, format) is var (hw, hh) && (long)hw * hh > MaxPixels)
                throw new MediaValidationException(MediaCodes.TooManyPixels, $"The image is {hw}×{hh}, over 50 megapixels.");
        }
        finally { ArrayPool<byte>.Shared.Return(head); }

        using (var codec = SKCodec.Create(path)
            ?? throw new MediaValidationException(MediaCodes.Unsupported, $"The file starts like a {format.ToUpperInvariant()} image but cannot be read."))
        {
            var info = codec.Info;
            if (info.Width <= 0 || info.Height <= 0)
                throw new MediaValidationException(MediaCodes.Unsupported, "The image has no size.");
            if ((long)info.Width * info.Height > MaxPixels)
                throw new MediaValidationException(MediaCodes.TooManyPixels, $"The image is {info.Width}×{info.Height}, over 50 megapixels.");
            if (Math.Min(info.Width, info.Height) < MinSide)
                throw new MediaValidationException(MediaCodes.TooSmall, $"The image is {info.Width}×{info.Height}; its shortest side must be at least {MinSide} px.");

            // A full decode: truncated or corrupt pixel data is refused here, not in the pipeline.
            var result = DecodeByRows(codec, info.Width, info.Height) ?? DecodeWhole(codec, info.Width, info.Height);
            if (result is not SKCodecResult.Success)
                throw new MediaValidationException(MediaCodes.Unsupported, $"The image data is damaged ({result}).");
            file.Position = 0;
            return new InspectedImage(format, info.Width, info.Height, Convert.ToHexStringLower(SHA256.HashData(file)));
        }
    }

    /// <summary>Every row decoded into one reused strip; null where the codec cannot decode by rows.</summary>
    private static SKCodecResult? DecodeByRows(SKCodec codec, int width, int height)
    {
        var strip = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul);
        if (codec.StartScanlineDecode(strip) != SKCodecResult.Success) return null;
        var rowBytes = strip.RowBytes;
        var buffer = Marshal.AllocHGlobal(rowBytes * StripRows);
        try
        {
            for (var row = 0; row < height; row += StripRows)
            {
                var rows = Math.Min(StripRows, height - row);
                if (codec.GetScanlines(buffer, rows, rowBytes) != rows) return SKCodecResult.IncompleteInput;
            }
            return SKCodecResult.Success;
        }
        finally { Marshal.FreeHGlobal(buffer); }
    }

    /// <summary>The whole image at once, scaled down first where the codec decodes scaled (WebP), else at full size.</summary>
    private static SKCodecResult DecodeWhole(SKCodec codec, int width, int height)
    {
        var scale = (float)Math.Min(1.0, Math.Sqrt(ScaledDecodePixels / ((double)width * height)));
        var size = codec.GetScaledDimensions(scale);
        using var bitmap = new SKBitmap(new SKImageInfo(size.Width, size.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
        return codec.GetPixels(bitmap.Info, bitmap.GetPixels());
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
