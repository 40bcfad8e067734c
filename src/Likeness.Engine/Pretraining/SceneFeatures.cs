using Likeness.Imaging;
using SkiaSharp;

namespace Likeness.Engine.Pretraining;

/// <summary>
/// What the quality measurements look at in a scene-like picture: its background colour (the median of a frame a
/// few pixels wide round the edge), the foreground (pixels far from that colour) and the foreground's colours as a
/// histogram (12 hues × 2 brightnesses for coloured pixels, 4 greys). An emoji subject is its colours and their
/// proportions; the histogram ignores where it stands, how big it is, whether it is mirrored and what is behind it,
/// which is exactly what changes between a subject's photos and the new settings it is generated in.
/// </summary>
public static class SceneFeatures
{
    private const int Side = 64, Frame = 3, Bins = 12 * 2 + 4;

    /// <summary>The picture at 64 × 64, as RGB bytes.</summary>
    private static byte[] Pixels(SKBitmap image)
    {
        using var small = image.Resize(new SKImageInfo(Side, Side, SKColorType.Rgba8888, SKAlphaType.Unpremul), new SKSamplingOptions(SKFilterMode.Linear));
        var rgba = small.GetPixelSpan();
        var rgb = new byte[Side * Side * 3];
        for (int i = 0, j = 0; i < rgb.Length; i += 3, j += 4) (rgb[i], rgb[i + 1], rgb[i + 2]) = (rgba[j], rgba[j + 1], rgba[j + 2]);
        return rgb;
    }

    public static SKColor Background(SKBitmap image) => Background(Pixels(image));

    private static SKColor Background(byte[] rgb) => Backdrop.FrameMedian(rgb, Side, Side, Frame);

    /// <summary>The named colour (<see cref="Backdrop.NamedColours"/>) nearest the background.</summary>
    public static string BackgroundName(SKBitmap image) => Backdrop.Nearest(Background(image));

    /// <summary>The share of pixels that differ clearly from the background.</summary>
    public static double ForegroundShare(SKBitmap image)
    {
        var rgb = Pixels(image);
        var bg = Background(rgb);
        var n = 0;
        for (var i = 0; i < rgb.Length; i += 3) if (Backdrop.Distance(bg, rgb[i], rgb[i + 1], rgb[i + 2]) > Backdrop.ForegroundDistance) n++;
        return (double)n / (Side * Side);
    }

    /// <summary>The foreground's colour histogram, summing to 1 (all zeros when nothing stands out).</summary>
    public static double[] Histogram(SKBitmap image)
    {
        var rgb = Pixels(image);
        var bg = Background(rgb);
        var h = new double[Bins];
        var n = 0;
        for (var i = 0; i < rgb.Length; i += 3)
        {
            if (Backdrop.Distance(bg, rgb[i], rgb[i + 1], rgb[i + 2]) <= Backdrop.ForegroundDistance) continue;
            new SKColor(rgb[i], rgb[i + 1], rgb[i + 2]).ToHsv(out var hue, out var saturation, out var value);
            var bin = saturation < 25 || value < 15 ? 24 + Math.Min(3, (int)(value / 25))
                : Math.Min(11, (int)(hue / 30)) * 2 + (value < 60 ? 0 : 1);
            h[bin]++;
            n++;
        }
        if (n > 0) for (var b = 0; b < Bins; b++) h[b] /= n;
        return h;
    }

    /// <summary>The mean of several histograms: a subject's prototype from its photos.</summary>
    public static double[] Mean(IEnumerable<double[]> histograms)
    {
        var all = histograms.ToList();
        return Enumerable.Range(0, Bins).Select(b => all.Average(h => h[b])).ToArray();
    }

    /// <summary>Histogram intersection: 1 for the same colours in the same proportions, 0 for nothing in common.</summary>
    public static double Similarity(double[] a, double[] b) => a.Zip(b, Math.Min).Sum();
}
