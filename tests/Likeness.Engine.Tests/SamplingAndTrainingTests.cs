using System.IO.Compression;
using System.Text.Json;
using Likeness.Engine.Imaging;
using Likeness.Engine.Lora;
using Likeness.Engine.Sampling;
using Likeness.Engine.SafeTensors;
using Likeness.Engine.Training;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Likeness.Engine.Tests;

public sealed class SamplingAndTrainingTests
{
    [Fact]
    public void Schedule_is_linear_without_shift_and_shifted_by_resolution()
    {
        Assert.Equal([1, 0.75, 0.5, 0.25, 0], FluxSampling.Schedule(4, 256, shift: false));
        var shifted = FluxSampling.Schedule(4, 256, shift: true); // μ = 0.5 at 256 tokens
        Assert.Equal(1, shifted[0]);
        Assert.Equal(Math.Exp(0.5) / (Math.Exp(0.5) + 1), shifted[2], 12);
        Assert.Equal(Math.Exp(0.5) / (Math.Exp(0.5) + 3), shifted[3], 12);
        Assert.Equal(0, shifted[4]);
        Assert.Equal(1.15, FluxSampling.Mu(4096), 12);
    }

    [Fact]
    public void Packing_round_trips_with_the_reference_feature_order()
    {
        using var latents = arange(1 * 16 * 4 * 6, ScalarType.Float32).reshape(1, 16, 4, 6);
        using var packed = FluxSampling.Pack(latents);
        Assert.Equal([1L, 6, 64], packed.shape);
        // token 0, feature c·4 + ph·2 + pw = latents[c, ph, pw]
        Assert.Equal(latents[0, 3, 1, 0].item<float>(), packed[0, 0, 3 * 4 + 2].item<float>());
        Assert.Equal(latents[0, 5, 1, 3].item<float>(), packed[0, 1, 5 * 4 + 2 + 1].item<float>());
        using var back = FluxSampling.Unpack(packed, 32, 48);
        Assert.True(back.equal(latents).all().item<bool>());
        using var ids = FluxSampling.ImageIds(1, 4, 6);
        Assert.Equal(new float[] { 0, 1, 2 }, ids[0, 5].data<float>().ToArray()); // row 1, col 2
    }

    [Fact]
    public void Same_seed_gives_the_same_image_and_another_seed_another()
    {
        using var engine = new FluxEngine(FluxPreset.Tiny, null);
        var a = engine.Generate(new GenerateOptions(null, "a red cube", 64, 48, 7, Steps: 4));
        var b = engine.Generate(new GenerateOptions(null, "a red cube", 64, 48, 7, Steps: 4));
        var c = engine.Generate(new GenerateOptions(null, "a red cube", 64, 48, 8, Steps: 4));
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        using var bitmap = SKBitmap.Decode(a);
        Assert.Equal((64, 48), (bitmap.Width, bitmap.Height));
    }

    [Fact]
    public void Png_encoding_round_trips_pixels()
    {
        using var image = (randint(0, 256, [3, 16, 24]).to_type(ScalarType.Float32) / 127.5) - 1;
        var png = ImageTensors.Encode(image, EncodedImageFormat.Png);
        using var bitmap = SKBitmap.Decode(png);
        using var back = ImageTensors.FromBitmap(bitmap, 24, 16);
        Assert.True((back - image).abs().max().item<float>() < 1e-5);
    }

    [Fact]
    public void Training_lowers_the_loss_on_a_fixed_dataset()
    {
        using var models = FluxModels.Load(FluxPreset.Tiny, null);
        var dir = Directory.CreateTempSubdirectory().FullName;
        var zip = Dataset(dir, 4);
        var adapterPath = Path.Combine(dir, "a.safetensors");
        var result = new LoraTrainer(models).Train(new LoraTrainingOptions(zip, adapterPath, Path.Combine(dir, "work"), 120, 8, 1), null, default);
        Assert.Equal(120, result.Steps);

        var before = EvaluationLoss(models, zip);
        using (LoraAdapter.Load(models.Transformer, adapterPath))
        {
            var after = EvaluationLoss(models, zip);
            Assert.True(after < before * 0.97, $"loss {before:F4} → {after:F4}");
        }
        using var reader = SafeTensorsFile.Open(adapterPath);
        Assert.Equal("TESTX", reader.Metadata["trigger_word"]);
        Assert.Equal("flux-tiny", reader.Metadata["base_model"]);
        Assert.Equal("120", reader.Metadata["steps"]);
        Assert.Equal("8", reader.Metadata["rank"]);
        Assert.Equal("8", reader.Metadata["alpha"]);
    }

    [Fact]
    public void A_resumed_run_reproduces_the_uninterrupted_one_and_cancel_keeps_the_checkpoint()
    {
        using var models = FluxModels.Load(FluxPreset.Tiny, null);
        var dir = Directory.CreateTempSubdirectory().FullName;
        var zip = Dataset(dir, 3);
        var trainer = new LoraTrainer(models);
        LoraTrainingOptions Options(string name) => new(zip, Path.Combine(dir, name + ".safetensors"), Path.Combine(dir, name), 16, 4, 42, CheckpointEvery: 5);

        trainer.Train(Options("straight"), null, default);

        using var cts = new CancellationTokenSource();
        var cancelAt = new Progress(p => { if (p.Step == 12) cts.Cancel(); });
        Assert.ThrowsAny<OperationCanceledException>(() => trainer.Train(Options("resumed"), cancelAt, cts.Token));
        Assert.False(File.Exists(Path.Combine(dir, "resumed.safetensors")));
        var state = JsonSerializer.Deserialize<Dictionary<string, double>>(File.ReadAllText(Path.Combine(dir, "resumed", "checkpoint", "state.json")))!;
        Assert.Equal(10, state["step"]);

        var steps = new List<int>();
        trainer.Train(Options("resumed"), new Progress(p => steps.Add(p.Step)), default);
        Assert.Equal(11, steps[0]); // picked up after the step-10 checkpoint

        using var a = SafeTensorsFile.Open(Path.Combine(dir, "straight.safetensors"));
        using var b = SafeTensorsFile.Open(Path.Combine(dir, "resumed.safetensors"));
        foreach (var key in a.Keys)
        {
            using var ta = a.Read(key);
            using var tb = b.Read(key);
            Assert.True((ta - tb).abs().max().item<float>() <= 1e-6, key);
        }
    }

    /// <summary>Mean flow-matching loss over fixed (t, ε) draws for every image: a deterministic yardstick.</summary>
    private static double EvaluationLoss(FluxModels models, string zip)
    {
        using var noGrad = no_grad();
        var manifest = DatasetReader.Read(zip);
        var g = new Generator(99, device("cpu"));
        double total = 0;
        var n = 0;
        foreach (var item in manifest.Items)
        {
            using var scope = NewDisposeScope();
            var (w, h) = DatasetReader.Bucket(item.Width, item.Height, models.Preset.BaseResolution);
            var x0 = models.Autoencoder.Encode(ImageTensors.FromEncoded(item.Bytes, w, h).unsqueeze(0));
            var (txt, vec) = models.Text.Encode([item.Caption]);
            for (var k = 0; k < 6; k++)
            {
                var t = sigmoid(randn([1], generator: g));
                var eps = randn(x0.shape, generator: g);
                var tv = t.view(-1, 1, 1, 1);
                var xt = (1 - tv) * x0 + tv * eps;
                var pred = models.Transformer.forward(FluxSampling.Pack(xt), FluxSampling.ImageIds(1, x0.shape[2], x0.shape[3]), txt,
                    FluxSampling.TextIds(1, txt.shape[1]), t, vec, full([1], 1f));
                total += nn.functional.mse_loss(pred, FluxSampling.Pack(eps - x0)).item<float>();
                n++;
            }
        }
        return total / n;
    }

    internal static string Dataset(string dir, int count) => Dataset(dir, "TESTX", Enumerable.Range(0, count).Select(i =>
    {
        var bitmap = new SKBitmap(96, 128);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(new SKColor((byte)(60 * i), 120, (byte)(200 - 40 * i)));
            using var paint = new SKPaint { Color = SKColors.White };
            canvas.DrawCircle(48, 40 + 10 * i, 20, paint);
        }
        return (bitmap, $"a photo of TESTX object, variant {i}");
    }).ToList());

    /// <summary>A dataset zip as the service writes it (manifest.json, NNN.jpg, NNN.txt); disposes the bitmaps.</summary>
    internal static string Dataset(string dir, string triggerWord, IReadOnlyList<(SKBitmap Image, string Caption)> photos)
    {
        var path = Path.Combine(dir, "dataset.zip");
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        var items = new List<object>();
        for (var i = 0; i < photos.Count; i++)
        {
            var (bitmap, caption) = photos[i];
            using (bitmap)
            using (var data = SKImage.FromBitmap(bitmap).Encode(SKEncodedImageFormat.Jpeg, 90))
            {
                var name = $"{i + 1:000}";
                using (var s = zip.CreateEntry(name + ".jpg").Open()) data.SaveTo(s);
                using (var s = new StreamWriter(zip.CreateEntry(name + ".txt").Open())) s.Write(caption);
                items.Add(new { image = name + ".jpg", caption, width = bitmap.Width, height = bitmap.Height });
            }
        }
        using (var s = zip.CreateEntry("manifest.json").Open())
            JsonSerializer.Serialize(s, new { triggerWord, baseModel = "flux-tiny", items });
        return path;
    }

    private sealed class Progress(Action<LoraTrainingProgress> report) : IProgress<LoraTrainingProgress>
    {
        public void Report(LoraTrainingProgress value) => report(value);
    }
}
