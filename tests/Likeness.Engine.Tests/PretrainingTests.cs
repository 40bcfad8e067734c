using System.Text.Json;
using Likeness.Engine.Pretraining;
using Likeness.Engine.SafeTensors;
using SkiaSharp;
using TorchSharp;

namespace Likeness.Engine.Tests;

/// <summary>
/// The pretraining pipeline on a small emoji set written by the test in the real layout (WebP renders named by code
/// points, an emoji-datasource <c>emoji.json</c>): names and skin tones matched as the real set needs, held-out
/// objects never composed, scenes and weights the same for a seed, a stopped run resumed to the same weights.
/// </summary>
public sealed class PretrainingTests
{
    /// <summary>Twelve objects, one with two skin tones; the render of 1f600 is named without its fe0f selector.</summary>
    private static string EmojiSet()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var assets = Directory.CreateDirectory(Path.Combine(dir, "assets")).FullName;
        var entries = new List<object>();
        void Render(string code, SKColor colour)
        {
            using var bitmap = new SKBitmap(new SKImageInfo(64, 64, SKColorType.Rgba8888, SKAlphaType.Premul));
            using (var canvas = new SKCanvas(bitmap))
            {
                canvas.Clear(SKColors.Transparent);
                using var paint = new SKPaint { Color = colour, IsAntialias = true };
                canvas.DrawCircle(32, 32, 26, paint);
            }
            using var data = bitmap.Encode(SKEncodedImageFormat.Webp, 90);
            File.WriteAllBytes(Path.Combine(assets, code + ".webp"), data.ToArray());
        }
        for (var i = 0; i < 12; i++)
        {
            var code = $"1f{300 + i:x3}";
            Render(code, new SKColor((byte)(20 * i), (byte)(250 - 20 * i), 90));
            entries.Add(new { name = $"THING {i}", unified = code.ToUpperInvariant(), category = "Objects" });
        }
        Render("1f600", SKColors.Gold);
        entries.Add(new { name = "GRINNING FACE", unified = "1F600-FE0F", category = "Smileys & Emotion" });
        Render("1f3c4", SKColors.Blue);
        Render("1f3c4-1f3fd", SKColors.SaddleBrown);
        entries.Add(new
        {
            name = "SURFER", unified = "1F3C4", category = "People & Body",
            skin_variations = new Dictionary<string, object> { ["1F3FD"] = new { unified = "1F3C4-1F3FD" }, ["1F3FF"] = new { unified = "1F3C4-1F3FF" } },
        });
        Render("1f1ea-1f1ec", SKColors.Red);
        entries.Add(new { name = "Egypt Flag", unified = "1F1EA-1F1EC", category = "Flags" });
        File.WriteAllText(Path.Combine(dir, "emoji.json"), JsonSerializer.Serialize(entries));
        return dir;
    }

    [Fact]
    public void The_catalog_names_renders_by_code_point_with_skin_tones_and_holds_objects_out_by_hash()
    {
        var catalog = EmojiCatalog.Load(EmojiSet());
        var all = catalog.Training.Concat(catalog.HeldOut).ToList();
        Assert.Equal(15, all.Count); // 12 things, the face (found without fe0f), the surfer and one of its two tones; no flag
        Assert.Contains(all, e => e.Name == "grinning face" && e.Code == "1f600-fe0f");
        Assert.Contains(all, e => e.Name == "surfer" && e.SkinTone == "medium skin" && e.Base == "1f3c4");
        Assert.DoesNotContain(all, e => e.SkinTone == "dark skin"); // no render for that tone
        Assert.DoesNotContain(all, e => e.Category == "Flags");
        Assert.All(catalog.HeldOut, e => Assert.True(EmojiCatalog.IsHeldOut(e.Base)));
        Assert.All(catalog.Training, e => Assert.False(EmojiCatalog.IsHeldOut(e.Base)));
        Assert.True(EmojiCatalog.IsHeldOut("1f34c")); // banana: held out on every machine
        Assert.Throws<InvalidOperationException>(() => EmojiCatalog.Load(Directory.CreateTempSubdirectory().FullName));
    }

    [Fact]
    public void A_seed_composes_the_same_scenes_and_captions_say_what_was_drawn()
    {
        var catalog = EmojiCatalog.Load(EmojiSet());
        var composer = new SceneComposer(catalog.Training, 128);
        var (a, b) = (new Random(3), new Random(3));
        for (var i = 0; i < 20; i++)
        {
            using var x = composer.Compose(a);
            using var y = composer.Compose(b);
            Assert.Equal(x.Caption, y.Caption);
            Assert.Equal(x.Image.Bytes, y.Image.Bytes);
            Assert.StartsWith("a photo of a ", x.Caption);
            Assert.All(x.Objects, o => Assert.Contains(o.Name, x.Caption));
            Assert.Contains(x.Background, x.Caption);
            Assert.Equal((128, 128), (x.Image.Width, x.Image.Height));
            if (x.Background.EndsWith(" background", StringComparison.Ordinal) && !x.Background.Contains("dots"))
            {
                var named = x.Background.Split(' ')[1];
                Assert.Equal(named, SceneFeatures.BackgroundName(x.Image));
            }
        }
    }

    [Fact]
    public void Pretraining_is_deterministic_for_a_seed_and_a_stopped_run_resumes_to_the_same_weights()
    {
        var catalog = EmojiCatalog.Load(EmojiSet());
        var options = new FluxTinyPretrainOptions(
            new AutoencoderPretrainOptions(Steps: 4, Batch: 2, Crop: 32, CheckpointEvery: 2, Warmup: 2, EvalScenes: 16),
            new TransformerPretrainOptions(Steps: 4, Batch: 2, Scenes: 8, CheckpointEvery: 2, Warmup: 2));
        FluxTinyPretrainReport Run(string work, string output, CancellationToken ct = default) =>
            new FluxTinyPretrainer(catalog, work, 7, FluxPreset.TinyRandom).Run(options, output, null, ct);

        var root = Directory.CreateTempSubdirectory().FullName;
        var straight = Run(Path.Combine(root, "a"), Path.Combine(root, "a-out"));
        Run(Path.Combine(root, "b"), Path.Combine(root, "b-out"));

        // Stopped at the transformer's third step (its step-2 checkpoint written), then run again.
        using var cts = new CancellationTokenSource();
        var progress = new Progress(p => { if (p.Phase == "transformer" && p.Step == 3) cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() =>
            new FluxTinyPretrainer(catalog, Path.Combine(root, "c"), 7, FluxPreset.TinyRandom).Run(options, Path.Combine(root, "c-out"), progress, cts.Token));
        Assert.False(Directory.Exists(Path.Combine(root, "c-out")));
        Run(Path.Combine(root, "c"), Path.Combine(root, "c-out"));
        // Stopped on purpose after the transformer's step 2 (--flux-stop-at), then run to the end.
        var stopped = options with { Transformer = options.Transformer with { StopAt = 2 } };
        new FluxTinyPretrainer(catalog, Path.Combine(root, "d"), 7, FluxPreset.TinyRandom).Run(stopped, Path.Combine(root, "d-stopped"), null, default);
        Assert.Equal("{\"step\":2}", File.ReadAllText(Path.Combine(root, "d", "transformer", "state.json")));
        Run(Path.Combine(root, "d"), Path.Combine(root, "d-out"));

        Assert.True(straight.OutputBytes > 0 && double.IsFinite(straight.HeldOutPsnr));
        foreach (var file in TinyWeightsFolder.FileNames)
        {
            using var a = SafeTensorsFile.Open(Path.Combine(root, "a-out", file));
            using var b = SafeTensorsFile.Open(Path.Combine(root, "b-out", file));
            using var c = SafeTensorsFile.Open(Path.Combine(root, "c-out", file));
            using var d = SafeTensorsFile.Open(Path.Combine(root, "d-out", file));
            Assert.All(a.Keys, k => Assert.Equal("F16", a.Info(k).Dtype));
            foreach (var key in a.Keys)
            {
                using var ta = a.Read(key);
                using var tb = b.Read(key);
                using var tc = c.Read(key);
                Assert.True(ta.equal(tb).all().item<bool>(), $"{file} {key}: two runs differ");
                Assert.True(ta.equal(tc).all().item<bool>(), $"{file} {key}: the resumed run differs");
                using var td = d.Read(key);
                Assert.True(ta.equal(td).all().item<bool>(), $"{file} {key}: the run stopped at a step and continued differs");
            }
        }
        // The weights folder loads as flux-tiny and generates.
        using var models = FluxModels.Load(FluxPreset.Tiny, Path.Combine(root, "a-out"));
        using var reader = SafeTensorsFile.Open(Path.Combine(root, "a-out", "ae.safetensors"));
        Assert.Equal(double.Parse(reader.Metadata["scale_factor"], System.Globalization.CultureInfo.InvariantCulture), models.Autoencoder.Params.ScaleFactor);
        using var engine = new FluxEngine(FluxPreset.Tiny, Path.Combine(root, "a-out"));
        using var image = SKBitmap.Decode(engine.Generate(new GenerateOptions(null, "a photo of a big thing 3 on a red background", 64, 64, 1, Steps: 2)));
        Assert.Equal(64, image.Width);
    }

    private sealed class Progress(Action<PretrainProgress> report) : IProgress<PretrainProgress>
    {
        public void Report(PretrainProgress value) => report(value);
    }
}
