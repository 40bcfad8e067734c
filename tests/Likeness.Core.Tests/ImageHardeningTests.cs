using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using Likeness.Core.Media;
using SkiaSharp;
using Xunit.Abstractions;

namespace Likeness.Core.Tests;

/// <summary>Issue #11: the image inspector against hostile files — metadata bloat, lying chunk lengths, and a seeded mutation fuzz.</summary>
public sealed class ImageHardeningTests(ITestOutputHelper output)
{
    internal static byte[] Encode(int w, int h, SKEncodedImageFormat format, int seed = 1)
    {
        var random = new Random(seed);
        using var bitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(new SKColor((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256)));
            for (var i = 0; i < 12; i++)
            {
                using var paint = new SKPaint { Color = new SKColor((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256)) };
                canvas.DrawCircle(random.Next(w), random.Next(h), random.Next(4, Math.Max(5, w / 3)), paint);
            }
        }
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, 90);
        return data.ToArray();
    }

    internal static string Write(byte[] bytes)
    {
        var path = Path.GetTempFileName();
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>A PNG chunk with a correct CRC.</summary>
    internal static byte[] Chunk(string type, ReadOnlySpan<byte> data)
    {
        var chunk = new byte[12 + data.Length];
        BinaryPrimitives.WriteUInt32BigEndian(chunk, (uint)data.Length);
        Encoding.ASCII.GetBytes(type).CopyTo(chunk, 4);
        data.CopyTo(chunk.AsSpan(8));
        BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(8 + data.Length), ImageHeader.Crc32(chunk.AsSpan(4, 4 + data.Length)));
        return chunk;
    }

    /// <summary>The PNG with <paramref name="chunk"/> inserted right after IHDR (signature 8 + IHDR 25 bytes).</summary>
    internal static byte[] InsertAfterIhdr(byte[] png, byte[] chunk) => [.. png[..33], .. chunk, .. png[33..]];

    [Fact]
    public void Refuses_a_png_carrying_a_huge_metadata_chunk_before_decoding_it()
    {
        var png = Encode(256, 256, SKEncodedImageFormat.Png);
        var text = new byte[9 * 1024 * 1024];
        "Comment\0"u8.CopyTo(text);
        text.AsSpan(8).Fill((byte)'a');
        var bloated = Write(InsertAfterIhdr(png, Chunk("tEXt", text)));
        var clock = Stopwatch.StartNew();
        var refused = Assert.Throws<MediaValidationException>(() => ImageInspector.Inspect(bloated));
        output.WriteLine($"refused in {clock.Elapsed.TotalMilliseconds:F1} ms: {refused.Message}");
        Assert.Equal(MediaCodes.MetadataTooLarge, refused.Code);
        Assert.Contains("tEXt", refused.Message);

        // Many chunks that are each small but together too much, likewise.
        var many = png[..33].Concat(Enumerable.Range(0, 300).SelectMany(_ => Chunk("prVt", new byte[16]))).Concat(png[33..]).ToArray();
        Assert.Equal(MediaCodes.MetadataTooLarge, Assert.Throws<MediaValidationException>(() => ImageInspector.Inspect(Write(many))).Code);
    }

    [Fact]
    public void Accepts_a_png_with_ordinary_metadata()
    {
        var png = Encode(200, 150, SKEncodedImageFormat.Png);
        var text = Encoding.ASCII.GetBytes("Comment\0" + new string('x', 40_000));
        var inspected = ImageInspector.Inspect(Write(InsertAfterIhdr(png, Chunk("tEXt", text))));
        Assert.Equal(("png", 200, 150), (inspected.Format, inspected.Width, inspected.Height));
    }

    [Fact]
    public void Refuses_a_png_chunk_whose_length_runs_past_the_end()
    {
        var png = Encode(120, 120, SKEncodedImageFormat.Png);
        var lying = InsertAfterIhdr(png, Chunk("tEXt", "Comment\0hello"u8));
        BinaryPrimitives.WriteUInt32BigEndian(lying.AsSpan(33), 0x7FFF_0000u); // the tEXt chunk now claims ~2 GB
        var refused = Assert.Throws<MediaValidationException>(() => ImageInspector.Inspect(Write(lying)));
        Assert.Equal(MediaCodes.Unsupported, refused.Code);
    }

    [Fact]
    public void Decodes_large_photos_by_rows_and_still_refuses_truncated_ones()
    {
        foreach (var format in new[] { SKEncodedImageFormat.Jpeg, SKEncodedImageFormat.Png, SKEncodedImageFormat.Webp })
        {
            var bytes = Encode(2400, 1600, format);
            var inspected = ImageInspector.Inspect(Write(bytes));
            Assert.Equal((2400, 1600), (inspected.Width, inspected.Height));
            var truncated = Assert.Throws<MediaValidationException>(() => ImageInspector.Inspect(Write(bytes[..(bytes.Length * 2 / 3)])));
            Assert.Equal(MediaCodes.Unsupported, truncated.Code);
        }
    }
}
