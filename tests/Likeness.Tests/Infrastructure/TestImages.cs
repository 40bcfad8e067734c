using SkiaSharp;

namespace Likeness.Tests.Infrastructure;

/// <summary>Real, distinct photos made with SkiaSharp: a gradient and shapes that vary with the index.</summary>
public static class TestImages
{
    public static byte[] Png(int index, int width = 96, int height = 128) => Encode(index, width, height, SKEncodedImageFormat.Png);
    public static byte[] Jpeg(int index, int width = 96, int height = 128) => Encode(index, width, height, SKEncodedImageFormat.Jpeg);
    public static byte[] Webp(int index, int width = 96, int height = 128) => Encode(index, width, height, SKEncodedImageFormat.Webp);

    public static List<byte[]> Pngs(int count, int seed = 0) => Enumerable.Range(seed, count).Select(i => Png(i)).ToList();

    public static byte[] Encode(int index, int width, int height, SKEncodedImageFormat format)
    {
        var random = new Random(index * 7919 + 17);
        using var bitmap = new SKBitmap(width, height);
        using (var canvas = new SKCanvas(bitmap))
        {
            using var gradient = new SKPaint
            {
                Shader = SKShader.CreateLinearGradient(new SKPoint(0, 0), new SKPoint(width, height),
                    [RandomColor(random), RandomColor(random)], SKShaderTileMode.Clamp),
            };
            canvas.DrawRect(0, 0, width, height, gradient);
            using var paint = new SKPaint { Color = RandomColor(random), IsAntialias = true };
            canvas.DrawCircle(width / 2f, height / 2.5f, Math.Min(width, height) / 4f + random.Next(8), paint);
            paint.Color = RandomColor(random);
            canvas.DrawRect(random.Next(width / 2), height * 0.6f, width / 2f, height * 0.3f, paint);
        }
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, 90);
        return data.ToArray();
    }

    private static SKColor RandomColor(Random r) => new((byte)r.Next(256), (byte)r.Next(256), (byte)r.Next(256));
}
