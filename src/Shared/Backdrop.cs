using SkiaSharp;

namespace Likeness.Imaging;

/// <summary>
/// A picture's backdrop and where its subject stands, in the words flux-tiny's scenes are captioned with. One source
/// file compiled into Likeness.Engine (the scene composer that pretrains flux-tiny, and the quality measures) and
/// Likeness.Core (the local captioner), so that a photo's caption names its background and place exactly as the
/// base model learned them — the LoRA is then left to learn the subject, not the backdrops of its photos.
/// </summary>
internal static class Backdrop
{
    /// <summary>The basic colour terms scenes are painted in and backgrounds are named by.</summary>
    public static readonly IReadOnlyList<(string Name, SKColor Colour)> NamedColours =
    [
        ("red", new SKColor(214, 40, 40)), ("orange", new SKColor(245, 140, 30)), ("yellow", new SKColor(246, 214, 52)),
        ("green", new SKColor(56, 168, 72)), ("teal", new SKColor(26, 158, 160)), ("blue", new SKColor(40, 92, 222)),
        ("purple", new SKColor(128, 58, 190)), ("pink", new SKColor(240, 128, 180)), ("brown", new SKColor(128, 80, 40)),
        ("black", new SKColor(24, 24, 24)), ("white", new SKColor(246, 246, 246)), ("gray", new SKColor(128, 128, 128)),
    ];

    /// <summary>An RGB distance beyond which a pixel is clearly not the background.</summary>
    public const double ForegroundDistance = 60;

    /// <summary>The sizes scenes draw one object at, as a share of the picture's side.</summary>
    public static readonly IReadOnlyList<(string Word, double Share)> Sizes = [("small", 0.36), ("mid-sized", 0.56), ("big", 0.8)];

    private static readonly string[] Rows = ["top", "middle", "bottom"];
    private static readonly string[] Columns = ["left", "centre", "right"];

    /// <summary>"in the centre", "on the left", "at the top", "at the bottom right", … for a cell of a 3 × 3 grid.</summary>
    public static string Place(int row, int column) => (row, column) switch
    {
        (1, 1) => "in the centre",
        (1, _) => $"on the {Columns[column]}",
        (_, 1) => $"at the {Rows[row]}",
        _ => $"at the {Rows[row]} {Columns[column]}",
    };

    public static double Distance(SKColor c, byte r, byte g, byte b) =>
        Math.Sqrt(Math.Pow(c.Red - r, 2) + Math.Pow(c.Green - g, 2) + Math.Pow(c.Blue - b, 2));

    /// <summary>The named colour nearest <paramref name="c"/>.</summary>
    public static string Nearest(SKColor c) => NamedColours.MinBy(n => Distance(n.Colour, c.Red, c.Green, c.Blue)).Name;

    /// <summary>The per-channel median of a frame <paramref name="frame"/> pixels wide round the edge of RGB bytes.</summary>
    public static SKColor FrameMedian(ReadOnlySpan<byte> rgb, int width, int height, int frame)
    {
        var channels = new List<byte>[3] { [], [], [] };
        foreach (var i in FrameIndices(width, height, frame))
            for (var c = 0; c < 3; c++) channels[c].Add(rgb[i * 3 + c]);
        byte Median(List<byte> v) { v.Sort(); return v[v.Count / 2]; }
        return new SKColor(Median(channels[0]), Median(channels[1]), Median(channels[2]));
    }

    /// <summary>What <see cref="Measure"/> finds: the backdrop's phrase, and where and how big what stands out from it is.</summary>
    public sealed record Finding(string Background, string? Place, string? Size);

    /// <summary>
    /// The background's name when the frame is one plain colour (at least 85 % of it within the foreground distance of
    /// its median), and the subject's place — the 3 × 3 cell its bounding box would be centred on when a box of that
    /// size is slid across the picture, as the scene composer places objects — and size (the nearest of
    /// <see cref="Sizes"/> to the box's longer side). Null when the backdrop is not plain; no place or size when
    /// nothing stands out from it.
    /// </summary>
    public static Finding? Measure(ReadOnlySpan<byte> rgb, int width, int height)
    {
        var frame = Math.Max(1, Math.Min(width, height) / 20);
        var median = FrameMedian(rgb, width, height, frame);
        int inFrame = 0, plain = 0;
        foreach (var i in FrameIndices(width, height, frame))
        {
            inFrame++;
            if (Distance(median, rgb[i * 3], rgb[i * 3 + 1], rgb[i * 3 + 2]) <= ForegroundDistance) plain++;
        }
        if (plain < inFrame * 0.85) return null;

        var xs = new List<int>();
        var ys = new List<int>();
        for (var y = 0; y < height; y++)
            for (var x = 0; x < width; x++)
            {
                var i = (y * width + x) * 3;
                if (Distance(median, rgb[i], rgb[i + 1], rgb[i + 2]) <= ForegroundDistance) continue;
                xs.Add(x);
                ys.Add(y);
            }
        var background = $"a {Nearest(median)} background";
        if (xs.Count < width * height / 200) return new Finding(background, null, null);
        var (row, tall) = Cell(ys, height);
        var (column, wide) = Cell(xs, width);
        var share = Math.Max(tall, wide);
        return new Finding(background, Place(row, column), Sizes.MinBy(s => Math.Abs(s.Share - share)).Word);
    }

    /// <summary>
    /// Which third a box spanning the 2nd–98th percentiles of <paramref name="positions"/> sits in along an axis of
    /// <paramref name="length"/> — its offset over the room the box leaves, in halves (the centre when it fills nearly
    /// the whole axis) — and the share of the axis it spans.
    /// </summary>
    private static (int Cell, double Share) Cell(List<int> positions, int length)
    {
        positions.Sort();
        var low = positions[(int)(positions.Count * 0.02)];
        var high = positions[(int)((positions.Count - 1) * 0.98)] + 1;
        var room = length - (high - low);
        var share = (double)(high - low) / length;
        if (room < length * 0.15) return (1, share);
        return (Math.Clamp((int)Math.Round(2.0 * low / room), 0, 2), share);
    }

    private static IEnumerable<int> FrameIndices(int width, int height, int frame)
    {
        for (var y = 0; y < height; y++)
            for (var x = 0; x < width; x++)
                if (x < frame || x >= width - frame || y < frame || y >= height - frame) yield return y * width + x;
    }
}
