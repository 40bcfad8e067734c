using SkiaSharp;

namespace Likeness.Imaging;

/// <summary>
/// Turns decoded pixels upright by their EXIF orientation. One source file compiled into both Likeness.Core (upload
/// normalisation) and Likeness.Engine (dataset reading), which do not reference each other.
/// </summary>
internal static class ExifOrientation
{
    public static bool SwapsAxes(SKEncodedOrigin origin) =>
        origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;

    /// <summary>A new upright bitmap (a plain copy when the pixels are already upright); the caller disposes both.</summary>
    public static SKBitmap Upright(SKBitmap stored, SKEncodedOrigin origin)
    {
        if (origin == SKEncodedOrigin.TopLeft) return stored.Copy(SKColorType.Rgba8888);
        var (w, h) = (stored.Width, stored.Height);
        var swap = SwapsAxes(origin);
        var upright = new SKBitmap(new SKImageInfo(swap ? h : w, swap ? w : h, SKColorType.Rgba8888, SKAlphaType.Premul));
        using var canvas = new SKCanvas(upright);
        canvas.SetMatrix(Matrix(origin, w, h));
        canvas.DrawBitmap(stored, 0, 0);
        return upright;
    }

    /// <summary>Maps the stored pixels (w × h) onto the upright canvas for each EXIF orientation.</summary>
    private static SKMatrix Matrix(SKEncodedOrigin origin, int w, int h) => origin switch
    {
        SKEncodedOrigin.TopRight => new SKMatrix(-1, 0, w, 0, 1, 0, 0, 0, 1),      // 2: mirror horizontally
        SKEncodedOrigin.BottomRight => new SKMatrix(-1, 0, w, 0, -1, h, 0, 0, 1),  // 3: rotate 180°
        SKEncodedOrigin.BottomLeft => new SKMatrix(1, 0, 0, 0, -1, h, 0, 0, 1),    // 4: mirror vertically
        SKEncodedOrigin.LeftTop => new SKMatrix(0, 1, 0, 1, 0, 0, 0, 0, 1),        // 5: transpose
        SKEncodedOrigin.RightTop => new SKMatrix(0, -1, h, 1, 0, 0, 0, 0, 1),      // 6: rotate 90° clockwise
        SKEncodedOrigin.RightBottom => new SKMatrix(0, -1, h, -1, 0, w, 0, 0, 1),  // 7: transverse
        SKEncodedOrigin.LeftBottom => new SKMatrix(0, 1, 0, -1, 0, w, 0, 0, 1),    // 8: rotate 90° counter-clockwise
        _ => SKMatrix.Identity,
    };
}
