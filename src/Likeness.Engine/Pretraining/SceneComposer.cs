using System.Collections.Concurrent;
using Likeness.Engine.Imaging;
using Likeness.Imaging;
using SkiaSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Pretraining;

/// <summary>A composed picture and the caption that says what was composed.</summary>
public sealed record Scene(SKBitmap Image, string Caption, IReadOnlyList<EmojiEntry> Objects, string Background) : IDisposable
{
    public void Dispose() => Image.Dispose();
}

/// <summary>
/// Composes square scenes from emoji renders: a background (a named colour, a gradient, stripes, dots or a
/// checkerboard in named colours), then one object (three sizes, nine places) or two side by side, sometimes
/// mirrored. The caption names what was drawn — objects, skin tone, size, place, background — in a fixed grammar:
/// "a photo of a big red apple on a teal background, at the top left". Everything comes from the <see cref="Random"/>
/// given, so a seed gives the same scenes on every machine.
/// </summary>
public sealed class SceneComposer(IReadOnlyList<EmojiEntry> objects, int size)
{
    // An object is drawn by its base emoji first, then one of its skin tones, so that the people (six renders each)
    // do not crowd out everything else.
    private readonly EmojiEntry[][] _byBase = objects.GroupBy(o => o.Base).Select(g => g.ToArray()).ToArray();


    private readonly ConcurrentDictionary<string, SKImage> _renders = new();

    public int Size => size;

    /// <summary>One scene drawn from <paramref name="random"/>.</summary>
    public Scene Compose(Random random)
    {
        var bitmap = new SKBitmap(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Premul));
        using var canvas = new SKCanvas(bitmap);
        var background = DrawBackground(canvas, random);
        string caption;
        var drawn = new List<EmojiEntry>();
        if (random.NextDouble() < 0.75)
        {
            var entry = Pick(random);
            var (word, fraction) = Backdrop.Sizes[random.Next(Backdrop.Sizes.Count)];
            var side = fraction * size;
            // A big object has room only near the centre; the others go on a 3×3 grid, with a little jitter.
            var (row, column) = word == "big" ? (1, 1) : (random.Next(3), random.Next(3));
            var cx = side / 2 + column * (size - side) / 2 + Jitter(random, size * 0.04);
            var cy = side / 2 + row * (size - side) / 2 + Jitter(random, size * 0.04);
            Draw(canvas, entry, cx, cy, side, random.NextDouble() < 0.3);
            drawn.Add(entry);
            caption = $"a photo of a {word} {Describe(entry)} on {background}, {Backdrop.Place(row, column)}";
        }
        else
        {
            var (left, right) = (Pick(random), Pick(random));
            var words = new string[2];
            for (var i = 0; i < 2; i++)
            {
                var entry = i == 0 ? left : right;
                var big = random.NextDouble() < 0.5;
                words[i] = big ? "mid-sized" : "small";
                var side = (big ? 0.48 : 0.34) * size;
                var cx = (i == 0 ? 0.26 : 0.74) * size + Jitter(random, size * 0.03);
                var cy = size * (0.3 + 0.4 * random.NextDouble());
                Draw(canvas, entry, cx, cy, side, random.NextDouble() < 0.3);
                drawn.Add(entry);
            }
            caption = $"a photo of a {words[0]} {Describe(left)} (left) and a {words[1]} {Describe(right)} (right) on {background}";
        }
        return new Scene(bitmap, caption, drawn, background);
    }

    private EmojiEntry Pick(Random random)
    {
        var variants = _byBase[random.Next(_byBase.Length)];
        return variants[random.Next(variants.Length)];
    }

    /// <summary><paramref name="count"/> scenes as one batch [count, 3, size, size] in [−1, 1]; their captions appended to <paramref name="captions"/>.</summary>
    public Tensor Batch(Random random, int count, List<string>? captions = null)
    {
        using var scope = NewDisposeScope();
        var images = new List<Tensor>();
        for (var i = 0; i < count; i++)
        {
            using var scene = Compose(random);
            images.Add(ImageTensors.FromBitmap(scene.Image, size, size));
            captions?.Add(scene.Caption);
        }
        return stack(images).MoveToOuterDisposeScope();
    }

    private static string Describe(EmojiEntry e) => e.SkinTone is null ? e.Name : $"{e.Name} with {e.SkinTone}";

    private static double Jitter(Random random, double amount) => (random.NextDouble() * 2 - 1) * amount;

    private static SKColor Vary(SKColor c, Random random)
    {
        byte V(byte x) => (byte)Math.Clamp(x + random.Next(-14, 15), 0, 255);
        return new SKColor(V(c.Red), V(c.Green), V(c.Blue));
    }

    /// <summary>Paints the background and returns its phrase ("a teal background", "red and white stripes", …).</summary>
    private string DrawBackground(SKCanvas canvas, Random random)
    {
        var colours = Backdrop.NamedColours;
        var a = random.Next(colours.Count);
        var b = (a + 1 + random.Next(colours.Count - 1)) % colours.Count;
        var (nameA, colourA) = (colours[a].Name, Vary(colours[a].Colour, random));
        var (nameB, colourB) = (colours[b].Name, Vary(colours[b].Colour, random));
        using var paint = new SKPaint { IsAntialias = true };
        var kind = random.NextDouble();
        if (kind < 0.55)
        {
            canvas.Clear(colourA);
            return $"a {nameA} background";
        }
        if (kind < 0.7)
        {
            var vertical = random.NextDouble() < 0.5;
            using var shader = SKShader.CreateLinearGradient(new SKPoint(0, 0), vertical ? new SKPoint(0, size) : new SKPoint(size, 0),
                [colourA, colourB], SKShaderTileMode.Clamp);
            paint.Shader = shader;
            canvas.DrawRect(0, 0, size, size, paint);
            return $"a {nameA} to {nameB} gradient";
        }
        canvas.Clear(colourA);
        paint.Color = colourB;
        var cell = size / (float)(6 + random.Next(5));
        if (kind < 0.8)
        {
            var vertical = random.NextDouble() < 0.5;
            for (var x = 0f; x < size; x += 2 * cell)
                canvas.DrawRect(vertical ? SKRect.Create(x, 0, cell, size) : SKRect.Create(0, x, size, cell), paint);
            return $"{nameA} and {nameB} stripes";
        }
        if (kind < 0.9)
        {
            for (var y = cell / 2; y < size; y += cell)
                for (var x = cell / 2; x < size; x += cell)
                    canvas.DrawCircle(x, y, cell * 0.28f, paint);
            return $"a {nameA} background with {nameB} dots";
        }
        for (var y = 0; y * cell < size; y++)
            for (var x = 0; x * cell < size; x++)
                if ((x + y) % 2 == 1) canvas.DrawRect(SKRect.Create(x * cell, y * cell, cell, cell), paint);
        return $"a {nameA} and {nameB} checkerboard";
    }

    private void Draw(SKCanvas canvas, EmojiEntry entry, double cx, double cy, double side, bool mirrored)
    {
        var render = _renders.GetOrAdd(entry.File, f => EmojiCatalog.Decode(f, Math.Min(256, size)));
        canvas.Save();
        if (mirrored) canvas.Scale(-1, 1, (float)cx, (float)cy);
        var half = (float)side / 2;
        canvas.DrawImage(render, SKRect.Create((float)cx - half, (float)cy - half, (float)side, (float)side),
            new SKSamplingOptions(SKCubicResampler.Mitchell));
        canvas.Restore();
    }
}
