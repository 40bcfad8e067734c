using Likeness.Imaging;
using SkiaSharp;

namespace Likeness.Core.Media;

/// <summary>What can honestly be measured in a photo without a learned model.</summary>
/// <param name="Background">"a red background" when the photo's edge is one plain colour and something stands out
/// from it (<see cref="Backdrop"/>), else null.</param>
/// <param name="Place">Where that something stands ("at the top left", "in the centre"), with <paramref name="Background"/>.</param>
/// <param name="Size">How big it is ("small", "mid-sized", "big"), with <paramref name="Background"/>.</param>
public sealed record ImageStatistics(
    string Orientation,
    double Brightness,
    double Contrast,
    double Saturation,
    IReadOnlyList<string> DominantColours,
    string Framing,
    string? Background = null,
    string? Place = null,
    string? Size = null);

public static class ImageMeasurer
{
    private static readonly (string Name, float Hue)[] Hues =
    [
        ("red", 0), ("orange", 30), ("yellow", 55), ("green", 120), ("teal", 175), ("blue", 220), ("purple", 275), ("pink", 330),
    ];

    public static ImageStatistics Measure(byte[] encoded)
    {
        using var full = SKBitmap.Decode(encoded) ?? throw new MediaValidationException("unsupported_image", "The image cannot be read.");
        // 64 px on the long side is plenty for averages and a colour histogram.
        var scale = 64.0 / Math.Max(full.Width, full.Height);
        var w = Math.Max(1, (int)(full.Width * scale));
        var h = Math.Max(1, (int)(full.Height * scale));
        using var small = full.Resize(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Premul), new SKSamplingOptions(SKFilterMode.Linear));

        var counts = new Dictionary<string, int>();
        var rgb = new byte[w * h * 3];
        double sumL = 0, sumL2 = 0, sumS = 0, centre = 0, edge = 0;
        int centreN = 0, edgeN = 0;
        for (var y = 0; y < h; y++)
        for (var x = 0; x < w; x++)
        {
            var c = small.GetPixel(x, y);
            var i = (y * w + x) * 3;
            (rgb[i], rgb[i + 1], rgb[i + 2]) = (c.Red, c.Green, c.Blue);
            c.ToHsl(out var hue, out var sat, out var light);
            var l = light / 100.0;
            sumL += l; sumL2 += l * l; sumS += sat / 100.0;
            var name = ColourName(hue, sat, light);
            counts[name] = counts.GetValueOrDefault(name) + 1;
            // Detail (local contrast) in the centre against the border tells a close-up from a wide shot.
            if (x > 0)
            {
                var d = Math.Abs(l - small.GetPixel(x - 1, y).ToLightness());
                var inCentre = x > w / 4 && x < 3 * w / 4 && y > h / 4 && y < 3 * h / 4;
                if (inCentre) { centre += d; centreN++; } else { edge += d; edgeN++; }
            }
        }
        var n = (double)w * h;
        var mean = sumL / n;
        var contrast = Math.Sqrt(Math.Max(0, sumL2 / n - mean * mean));
        var dominant = counts.Where(kv => kv.Value >= n * 0.12).OrderByDescending(kv => kv.Value).Take(3).Select(kv => kv.Key).ToList();
        if (dominant.Count == 0) dominant.Add(counts.MaxBy(kv => kv.Value).Key);
        var ratio = (double)full.Width / full.Height;
        var orientation = ratio > 1.1 ? "landscape" : ratio < 0.9 ? "portrait" : "square";
        var centreDetail = centreN == 0 ? 0 : centre / centreN;
        var edgeDetail = edgeN == 0 ? 0 : edge / edgeN;
        var framing = centreDetail > edgeDetail * 1.6 ? "centred subject" : edgeDetail > centreDetail * 1.6 ? "wide framing" : "close-up framing";
        var backdrop = Backdrop.Measure(rgb, w, h);
        return backdrop is { Place: { } place } b
            ? new ImageStatistics(orientation, mean, contrast, sumS / n, dominant, framing, b.Background, place, b.Size)
            : new ImageStatistics(orientation, mean, contrast, sumS / n, dominant, framing);
    }


    private static double ToLightness(this SKColor c)
    {
        c.ToHsl(out _, out _, out var l);
        return l / 100.0;
    }

    private static string ColourName(float hue, float sat, float light)
    {
        if (light < 15) return "black";
        if (light > 88) return "white";
        if (sat < 15) return light < 45 ? "dark grey" : "grey";
        if (sat < 35 && light > 55 && (hue < 50 || hue > 330)) return "beige";
        if (hue is >= 10 and < 45 && light < 40) return "brown";
        var best = Hues.MinBy(h => Math.Min(Math.Abs(h.Hue - hue), 360 - Math.Abs(h.Hue - hue)));
        return best.Name;
    }
}
