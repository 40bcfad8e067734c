using System.Diagnostics;
using Likeness.Engine.Captioning;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;
using static Likeness.Engine.Tests.Florence2ParityTests;

namespace Likeness.Engine.Tests;

/// <summary>The whole captioner from a model folder: Data/florence2-tiny with its synthetic tokenizer (see its README).</summary>
public sealed class Florence2CaptioningTests
{
    internal static byte[] Photo(int width = 120, int height = 90)
    {
        using var bitmap = new SKBitmap(width, height);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(new SKColor(40, 90, 160));
            using var paint = new SKPaint { Color = new SKColor(230, 200, 170) };
            canvas.DrawCircle(width / 2f, height / 2.5f, height / 4f, paint);
        }
        using var jpeg = bitmap.Encode(SKEncodedImageFormat.Jpeg, 90);
        return jpeg.ToArray();
    }

    [Fact]
    public void Captions_a_photo_from_the_model_folder_identically_twice()
    {
        using var captioning = Florence2Captioning.Load(Folder);
        Assert.Equal(new GenerationSettings(3, 24, true, 3, 1.0, 2), captioning.Settings);
        Assert.Equal((56, 72), (captioning.Processor.Width, captioning.Processor.Height));
        var photo = Photo();
        var watch = Stopwatch.StartNew();
        var first = captioning.Caption(photo);
        var elapsed = watch.Elapsed;
        var second = captioning.Caption(photo);
        Assert.Equal(first, second);
        Assert.False(string.IsNullOrWhiteSpace(first));

        // The text is the tokenizer's reading of the beam search over the processed pixels.
        using var pixels = captioning.Processor.FromEncoded(photo);
        var generated = captioning.Generate(pixels, Florence2Tasks.MoreDetailedCaption);
        Assert.Equal(first, captioning.Tokenizer.Decode(generated.Sequences[0]));
        Assert.Equal(2, generated.Sequences[0][0]);
        Console.WriteLine($"tiny Florence-2, one photo: {elapsed.TotalMilliseconds:F0} ms; caption: {first}");
    }

    [Fact]
    public void The_prompt_is_the_more_detailed_caption_task_between_start_and_end_tokens()
    {
        var tokenizer = Florence2Tokenizer.FromFolder(Folder);
        var ids = tokenizer.EncodePrompt(Florence2Tasks.Prompt(Florence2Tasks.MoreDetailedCaption));
        Assert.Equal(0, ids[0]);
        Assert.Equal(2, ids[^1]);
        // "Describe with a paragraph what is shown in the image.": D is not in the tiny vocabulary (unk), " a" is one merge.
        Assert.Equal(3, ids[1]);
        Assert.Equal("escribe with a paragraph what is shown in the image.", tokenizer.Decode(ids));
    }

    [Fact]
    public void A_folder_missing_files_is_refused_naming_each()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        var error = Assert.Throws<InvalidOperationException>(() => Florence2Folder.Locate(dir));
        Assert.Contains("config.json", error.Message);
        Assert.Contains("model.safetensors (or pytorch_model.bin)", error.Message);
        Assert.Contains("vocab.json + merges.txt (or tokenizer.json)", error.Message);
        Assert.DoesNotContain('\n', error.Message);
        File.Copy(Path.Combine(Folder, "config.json"), Path.Combine(dir, "config.json"));
        File.Copy(Path.Combine(Folder, "vocab.json"), Path.Combine(dir, "vocab.json"));
        File.Copy(Path.Combine(Folder, "merges.txt"), Path.Combine(dir, "merges.txt"));
        error = Assert.Throws<InvalidOperationException>(() => Florence2Folder.Locate(dir));
        Assert.EndsWith("missing model.safetensors (or pytorch_model.bin).", error.Message);
        Assert.Contains("does not exist", Assert.Throws<InvalidOperationException>(() => Florence2Folder.Locate(Path.Combine(dir, "nope"))).Message);
    }
}
