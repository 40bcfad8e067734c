using Likeness.Engine;
using Likeness.Engine.Pretraining;
using SkiaSharp;

/// <summary>
/// The shipped flux-tiny on its own, with held-out objects (never seen in pretraining):
/// - the autoencoder's reconstruction PSNR on 256 composed scenes;
/// - prompt following: images generated from captions of composed scenes (a single object on a solid background,
///   28 steps, guidance 3.5, one seed each), judged on whether the background is the named colour (the named colour
///   nearest the image's border), whether an object stands out at all (≥ 3 % of the pixels differ clearly from the
///   background), and whether its colours are nearer the named object's render than a random other object's;
///   the same for captions of training objects, for comparison.
/// </summary>
internal static class Quality
{
    public static void Run(EmojiCatalog catalog, int count, string outFolder)
    {
        Directory.CreateDirectory(outFolder);
        using (var models = FluxModels.Load(FluxPreset.Tiny, null))
        {
            var psnr = AutoencoderPretrainer.Psnr(models.Autoencoder, new SceneComposer(catalog.HeldOut, FluxPreset.Tiny.BaseResolution), new Random(42), 256);
            Console.WriteLine($"autoencoder: held-out PSNR {psnr:F2} dB over 256 scenes at {FluxPreset.Tiny.BaseResolution} px");
        }
        using var engine = new FluxEngine(FluxPreset.Tiny, null);
        foreach (var (name, objects) in new[] { ("held-out objects", catalog.HeldOut), ("training objects", catalog.Training) })
        {
            var composer = new SceneComposer(objects, FluxPreset.Tiny.BaseResolution);
            var random = new Random(7);
            int background = 0, present = 0, colours = 0, n = 0;
            while (n < count)
            {
                using var scene = composer.Compose(random);
                if (scene.Objects.Count != 1 || !scene.Background.EndsWith(" background", StringComparison.Ordinal)) continue;
                var named = scene.Background.Split(' ')[1];
                var png = engine.Generate(new GenerateOptions(null, scene.Caption, FluxPreset.Tiny.BaseResolution, FluxPreset.Tiny.BaseResolution, n));
                File.WriteAllBytes(Path.Combine(outFolder, $"{name.Split(' ')[0]}-{n:D3}.png"), png);
                using var image = SKBitmap.Decode(png);
                if (SceneFeatures.BackgroundName(image) == named) background++;
                if (SceneFeatures.ForegroundShare(image) >= 0.03) present++;
                var features = SceneFeatures.Histogram(image);
                var other = objects[random.Next(objects.Count)];
                if (SceneFeatures.Similarity(features, Render(scene.Objects[0])) > SceneFeatures.Similarity(features, Render(other))) colours++;
                n++;
            }
            Console.WriteLine($"{name}: background colour as named {Percent(background, n)}, an object drawn {Percent(present, n)}, " +
                $"object colours nearer the named object than a random other {Percent(colours, n)} (chance 50 %), over {n} captions");
        }
    }

    private static string Percent(int k, int n) => $"{100.0 * k / n:F0} % ({k}/{n})";

    /// <summary>The render alone on mid grey: the object's own colours.</summary>
    public static double[] Render(EmojiEntry entry)
    {
        using var render = SKBitmap.Decode(entry.File);
        using var canvas = new SKBitmap(new SKImageInfo(render.Width, render.Height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using (var c = new SKCanvas(canvas))
        {
            c.Clear(new SKColor(128, 128, 128));
            c.DrawBitmap(render, 0, 0);
        }
        return SceneFeatures.Histogram(canvas);
    }
}
