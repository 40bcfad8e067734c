using System.Text;
using Likeness.Core.Captioning;
using Likeness.Core.Datasets;
using Likeness.Core.Media;
using Likeness.Core.Ports;
using Likeness.Core.TriggerWords;
using SkiaSharp;

namespace Likeness.Core.Tests;

public sealed class MediaTests
{
    private static byte[] Image(int w, int h, SKColor color, SKEncodedImageFormat format = SKEncodedImageFormat.Jpeg, SKColor? corner = null)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(color);
            if (corner is { } c) { using var p = new SKPaint { Color = c }; canvas.DrawRect(0, 0, w / 4f, h / 4f, p); }
        }
        using var data = SKImage.FromBitmap(bitmap).Encode(format, 95);
        return data.ToArray();
    }

    /// <summary>A JPEG with an APP1 EXIF segment carrying only the orientation tag.</summary>
    private static byte[] WithExifOrientation(byte[] jpeg, ushort orientation)
    {
        byte[] tiff =
        [
            (byte)'M', (byte)'M', 0, 42, 0, 0, 0, 8, // big-endian TIFF header, IFD at 8
            0, 1,                                     // one entry
            0x01, 0x12, 0, 3, 0, 0, 0, 1, (byte)(orientation >> 8), (byte)orientation, 0, 0, // Orientation, SHORT, 1
            0, 0, 0, 0,                               // no next IFD
        ];
        var payload = Encoding.ASCII.GetBytes("Exif\0\0").Concat(tiff).ToArray();
        var length = payload.Length + 2;
        byte[] app1 = [0xFF, 0xE1, (byte)(length >> 8), (byte)length, .. payload];
        return [.. jpeg[..2], .. app1, .. jpeg[2..]];
    }

    private static string Write(byte[] bytes)
    {
        var path = Path.GetTempFileName();
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void Accepts_jpeg_png_and_webp_by_content()
    {
        Assert.Equal("jpeg", ImageInspector.Inspect(Write(Image(80, 90, SKColors.Red))).Format);
        Assert.Equal("png", ImageInspector.Inspect(Write(Image(80, 90, SKColors.Red, SKEncodedImageFormat.Png))).Format);
        var webp = ImageInspector.Inspect(Write(Image(80, 90, SKColors.Red, SKEncodedImageFormat.Webp)));
        Assert.Equal(("webp", 80, 90), (webp.Format, webp.Width, webp.Height));
    }

    [Fact]
    public void Refuses_a_truncated_jpeg_and_a_gif()
    {
        var jpeg = Image(200, 200, SKColors.Blue);
        var truncated = Assert.Throws<MediaValidationException>(() => ImageInspector.Inspect(Write(jpeg[..(jpeg.Length / 3)])));
        Assert.Equal("unsupported_image", truncated.Code);
        var gif = Assert.Throws<MediaValidationException>(() => ImageInspector.Inspect(Write(Encoding.ASCII.GetBytes("GIF89a........"))));
        Assert.Equal("unsupported_image", gif.Code);
    }

    [Fact]
    public void Reads_sizes_from_headers()
    {
        Assert.Equal((80, 90), ImageHeader.TryReadSize(Image(80, 90, SKColors.Red), "jpeg"));
        Assert.Equal((81, 91), ImageHeader.TryReadSize(Image(81, 91, SKColors.Red, SKEncodedImageFormat.Png), "png"));
        Assert.Equal((82, 92), ImageHeader.TryReadSize(Image(82, 92, SKColors.Red, SKEncodedImageFormat.Webp), "webp"));
    }

    [Fact]
    public void Applies_exif_orientation_and_strips_the_metadata()
    {
        var plain = Image(120, 60, SKColors.White, corner: SKColors.Red);
        var rotated = WithExifOrientation(plain, 6); // stored landscape, shown rotated 90° clockwise
        var photo = PhotoNormalizer.Normalize(rotated);
        Assert.Equal((60, 120), (photo.Width, photo.Height));
        using var bitmap = SKBitmap.Decode(photo.Jpeg);
        // The red top-left corner of the stored image ends at the top-right once upright.
        var topRight = bitmap.GetPixel(bitmap.Width - 5, 5);
        var topLeft = bitmap.GetPixel(5, 5);
        Assert.True(topRight.Red > 200 && topRight.Green < 80, topRight.ToString());
        Assert.True(topLeft.Green > 200, topLeft.ToString());
        Assert.DoesNotContain("Exif", Encoding.ASCII.GetString(photo.Jpeg));
        Assert.Contains("Exif", Encoding.ASCII.GetString(rotated));
    }

    [Fact]
    public void Flattens_alpha_onto_white_and_bounds_the_size()
    {
        var transparent = Image(2000, 1000, SKColors.Transparent, SKEncodedImageFormat.Png);
        var photo = PhotoNormalizer.Normalize(transparent, maxSide: 1024);
        Assert.Equal((1024, 512), (photo.Width, photo.Height));
        using var bitmap = SKBitmap.Decode(photo.Jpeg);
        Assert.True(bitmap.GetPixel(10, 10).Red > 245);
    }

    [Fact]
    public async Task Captions_say_what_the_request_says_and_what_is_measured()
    {
        var subject = new SubjectDescription("person", "female", "East Asian", "34");
        var (caption, source) = await new LocalCaptioner().CaptionAsync(new CaptionInput(Image(90, 160, new SKColor(20, 40, 200)), 90, 160, subject), default);
        Assert.Equal(CaptionSources.Local, source);
        Assert.StartsWith("a photo of a woman, East Asian, 34 years old", caption);
        Assert.Contains("portrait orientation", caption);
        Assert.Contains("blue", caption);
        var dark = (await new LocalCaptioner().CaptionAsync(new CaptionInput(Image(160, 90, new SKColor(10, 10, 10)), 160, 90, subject), default)).Text;
        Assert.Contains("landscape orientation", dark);
        Assert.Contains("dark", dark);

        var composed = CaptionComposer.Compose("ZOKRA", subject, caption);
        Assert.StartsWith("a photo of ZOKRA woman, East Asian, 34 years old", composed);
        Assert.Equal("an image in the style of ZOKRA, bright", CaptionComposer.Compose("ZOKRA", new SubjectDescription("style", null, null, null), "bright"));
        Assert.StartsWith("a photo of ZOKRA object", CaptionComposer.Compose("ZOKRA", new SubjectDescription("object", null, null, null), "a photo of an object, red"));
    }

    [Theory]
    [InlineData(0.05, 0.05, 0.3, "small", "at the top left")]
    [InlineData(0.35, 0.35, 0.3, "small", "in the centre")]
    [InlineData(0.4, 0.2, 0.55, "mid-sized", "on the right")]
    [InlineData(0.1, 0.1, 0.8, "big", "in the centre")]
    [InlineData(0.4, 0.62, 0.36, "small", "at the bottom")]
    public async Task A_subject_on_a_plain_backdrop_is_captioned_with_the_backdrop_its_place_and_size(double left, double top, double side,
        string size, string place)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(400, 400, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(new SKColor(205, 45, 38));
            using var paint = new SKPaint { Color = new SKColor(250, 220, 40) };
            canvas.DrawOval(SKRect.Create((float)(left * 400), (float)(top * 400), (float)(side * 400), (float)(side * 400)), paint);
            paint.Color = new SKColor(30, 60, 200);
            canvas.DrawRect(SKRect.Create((float)((left + side / 4) * 400), (float)((top + side / 2) * 400), (float)(side * 200), (float)(side * 100)), paint);
        }
        using var data = SKImage.FromBitmap(bitmap).Encode(SKEncodedImageFormat.Jpeg, 90);
        var subject = new SubjectDescription("object", null, null, null);
        var caption = (await new LocalCaptioner().CaptionAsync(new CaptionInput(data.ToArray(), 400, 400, subject), default)).Text;
        Assert.Equal($"a photo of a {size} object on a red background, {place}", caption);
        Assert.Equal($"a photo of a {size} ZOKRA object on a red background, {place}", CaptionComposer.Compose("ZOKRA", subject, caption));
        var woman = new SubjectDescription("person", "female", null, "30");
        Assert.Equal($"a photo of a woman on a red background, {place}, 30 years old",
            (await new LocalCaptioner().CaptionAsync(new CaptionInput(data.ToArray(), 400, 400, woman), default)).Text);
    }

    [Fact]
    public void The_composer_keeps_the_setting_that_follows_the_subject()
    {
        var man = new SubjectDescription("person", "male", null, null);
        Assert.Equal("a photo of ZOKRA man in a blue jacket on a beach, soft light",
            CaptionComposer.Compose("ZOKRA", man, "A photo of a smiling man in a blue jacket on a beach, soft light"));
        Assert.Equal("a photo of ZOKRA man, soft light", CaptionComposer.Compose("ZOKRA", man, "a photo of a man, soft light"));
        Assert.Equal("a photo of ZOKRA man", CaptionComposer.Compose("ZOKRA", man, "a photo of a man"));
        Assert.Equal("a photo of ZOKRA man, a man laughing", CaptionComposer.Compose("ZOKRA", man, "a man laughing"));
    }

    [Fact]
    public void Packages_the_dataset_in_a_fixed_layout()
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory().FullName, "d.zip");
        var items = Enumerable.Range(0, 3).Select(i => new DatasetItem(Image(64, 64, SKColors.Green), $"caption {i}", 64, 64, CaptionSources.Local)).ToList();
        DatasetPackager.Write(path, "ZOKRA", new SubjectDescription("object", null, null, null), "flux-tiny", items);
        using var zip = System.IO.Compression.ZipFile.OpenRead(path);
        Assert.Equal(["001.jpg", "001.txt", "002.jpg", "002.txt", "003.jpg", "003.txt", "manifest.json"], zip.Entries.Select(e => e.FullName).ToArray());
        var manifest = DatasetPackager.ReadManifest(path);
        Assert.Equal("ZOKRA", manifest.TriggerWord);
        Assert.Equal("flux-tiny", manifest.BaseModel);
        Assert.Equal("caption 2", manifest.Items[2].Caption);
        Assert.Equal("003.jpg", manifest.Items[2].Image);
        Assert.Equal(CaptionSources.Local, manifest.Items[2].Source);
    }

    [Fact]
    public void Trigger_words_are_five_letters_and_never_a_listed_word()
    {
        var generator = new TriggerWordGenerator();
        var words = Enumerable.Range(0, 10_000).Select(_ => generator.Next()).ToList();
        Assert.All(words, w => Assert.Matches("^[A-Z]{5}$", w));
        Assert.All(words, w => Assert.True(TriggerWordGenerator.IsAllowed(w)));
        Assert.True(words.Distinct().Count() > 9_000);
        Assert.False(TriggerWordGenerator.IsAllowed("HOUSE"));
        Assert.False(TriggerWordGenerator.IsAllowed("ZOKR"));
    }
}
