using System.Text.Json;
using Likeness.Imaging;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Captioning;

/// <summary>
/// Florence-2's image processor (transformers' CLIPImageProcessor with the model folder's
/// <c>preprocessor_config.json</c>): RGB, resized to a fixed size (768 × 768 for base and large, aspect not kept) with
/// PIL's bicubic filter, scaled to [0, 1] and normalised with the ImageNet mean and deviation.
/// </summary>
/// <remarks>
/// The resize is PIL's own algorithm (what the reference processor calls): separable, horizontal pass first, the Keys
/// cubic with a = −0.5 whose support widens with the scale when shrinking (so a large photo is averaged, not
/// point-sampled as Skia's cubic sampler would), weights normalised per output pixel and applied in PIL's 22-bit fixed
/// point with each pass rounded and clamped to a byte. SkiaSharp decodes.
/// </remarks>
public sealed record Florence2Processor(int Width, int Height, double[] Mean, double[] Std)
{
    public static readonly Florence2Processor Default = new(768, 768, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]);

    /// <summary>The folder's <c>preprocessor_config.json</c>, or Florence-2's defaults when it has none.</summary>
    public static Florence2Processor FromFolder(string folder)
    {
        var path = Path.Combine(folder, "preprocessor_config.json");
        if (!File.Exists(path)) return Default;
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var root = doc.RootElement;
        var (width, height) = (Default.Width, Default.Height);
        if (root.TryGetProperty("size", out var size) && size.ValueKind == JsonValueKind.Object)
        {
            if (size.TryGetProperty("width", out var w)) width = w.GetInt32();
            if (size.TryGetProperty("height", out var h)) height = h.GetInt32();
        }
        double[] Array(string name, double[] fallback) => root.TryGetProperty(name, out var a) && a.ValueKind == JsonValueKind.Array
            ? a.EnumerateArray().Select(x => x.GetDouble()).ToArray() : fallback;
        return new Florence2Processor(width, height, Array("image_mean", Default.Mean), Array("image_std", Default.Std));
    }

    /// <summary>An encoded photo (jpg/png/webp; EXIF orientation applied) → pixels [1, 3, Height, Width].</summary>
    public Tensor FromEncoded(byte[] encoded)
    {
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data) ?? throw new InvalidDataException("The image cannot be decoded.");
        using var decoded = SKBitmap.Decode(codec) ?? throw new InvalidDataException("The image cannot be decoded.");
        using var upright = ExifOrientation.Upright(decoded, codec.EncodedOrigin);
        using var rgba = upright.Copy(SKColorType.Rgba8888);
        var pixels = rgba.GetPixelSpan();
        var rgb = new byte[rgba.Width * rgba.Height * 3];
        for (int i = 0, j = 0; i < rgb.Length; i += 3, j += 4) (rgb[i], rgb[i + 1], rgb[i + 2]) = (pixels[j], pixels[j + 1], pixels[j + 2]);
        return FromRgb(rgb, rgba.Width, rgba.Height);
    }

    /// <summary>Interleaved RGB bytes [height, width, 3] → pixels [1, 3, Height, Width].</summary>
    public Tensor FromRgb(byte[] rgb, int width, int height)
    {
        var resized = Resize(rgb, width, height, Width, Height);
        var plane = Width * Height;
        var values = new float[3 * plane];
        for (var c = 0; c < 3; c++)
        {
            // CLIPImageProcessor rescales to float32 first, then normalises.
            var (mean, std) = ((float)Mean[c], (float)Std[c]);
            for (var p = 0; p < plane; p++) values[c * plane + p] = (resized[p * 3 + c] * (float)(1 / 255.0) - mean) / std;
        }
        return tensor(values, [1, 3, Height, Width]);
    }

    /// <summary>PIL's <c>Image.resize(…, BICUBIC)</c> of an RGB image, byte for byte.</summary>
    public static byte[] Resize(byte[] rgb, int width, int height, int toWidth, int toHeight)
    {
        var rows = width == toWidth ? rgb : Pass(rgb, height, width, toWidth, horizontal: true);
        return height == toHeight ? rows : Pass(rows, height, toWidth, toHeight, horizontal: false);
    }

    private const int PrecisionBits = 32 - 8 - 2;

    /// <summary>One separable pass: along rows (horizontal) or columns, from <paramref name="from"/> to <paramref name="to"/> samples.</summary>
    private static byte[] Pass(byte[] src, int height, int width, int to, bool horizontal)
    {
        var from = horizontal ? width : height;
        var (starts, counts, weights, taps) = Coefficients(from, to);
        var (outW, outH) = horizontal ? (to, height) : (width, to);
        var dst = new byte[outW * outH * 3];
        for (var y = 0; y < outH; y++)
            for (var x = 0; x < outW; x++)
            {
                var o = horizontal ? x : y;
                for (var c = 0; c < 3; c++)
                {
                    long sum = 1L << (PrecisionBits - 1);
                    for (var t = 0; t < counts[o]; t++)
                    {
                        var s = starts[o] + t;
                        var value = horizontal ? src[(y * width + s) * 3 + c] : src[(s * width + x) * 3 + c];
                        sum += value * (long)weights[o * taps + t];
                    }
                    dst[(y * outW + x) * 3 + c] = (byte)Math.Clamp(sum >> PrecisionBits, 0, 255);
                }
            }
        return dst;
    }

    /// <summary>Keys' cubic convolution kernel, a = −0.5 (PIL's BICUBIC).</summary>
    private static double Cubic(double x)
    {
        const double a = -0.5;
        x = Math.Abs(x);
        if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
        if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
        return 0;
    }

    private static (int[] Starts, int[] Counts, int[] Weights, int Taps) Coefficients(int from, int to)
    {
        var scale = (double)from / to;
        var filterScale = Math.Max(scale, 1.0);
        var support = 2.0 * filterScale;
        var taps = (int)Math.Ceiling(support) * 2 + 1;
        var (starts, counts, weights) = (new int[to], new int[to], new int[to * taps]);
        var k = new double[taps];
        for (var o = 0; o < to; o++)
        {
            var center = (o + 0.5) * scale;
            var start = Math.Max((int)(center - support + 0.5), 0);
            var count = Math.Min((int)(center + support + 0.5), from) - start;
            double total = 0;
            for (var t = 0; t < count; t++) total += k[t] = Cubic((t + start - center + 0.5) / filterScale);
            for (var t = 0; t < count; t++)
            {
                var w = total != 0 ? k[t] / total : 0;
                weights[o * taps + t] = (int)(w * (1 << PrecisionBits) + (w < 0 ? -0.5 : 0.5));
            }
            (starts[o], counts[o]) = (start, count);
        }
        return (starts, counts, weights, taps);
    }
}
