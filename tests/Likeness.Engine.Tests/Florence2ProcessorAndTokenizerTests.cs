using System.Text.Json;
using Likeness.Engine.Captioning;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;
using static Likeness.Engine.Tests.Florence2ParityTests;

namespace Likeness.Engine.Tests;

public sealed class Florence2ProcessorAndTokenizerTests
{
    /// <summary>
    /// Against transformers' CLIPImageProcessor (PIL bicubic, 30 × 40 → 48 × 64, ImageNet normalisation). The resize
    /// follows PIL's fixed-point algorithm, so the pixels agree to float32 rounding of the normalisation; a different
    /// bicubic (Skia's, say) would be off by several byte levels and fail this bound, which is below one level
    /// (1/255/0.225 ≈ 0.017).
    /// </summary>
    [Fact]
    public void Processor_matches_the_reference_image_processor()
    {
        using var input = Reference("processor_input");
        Assert.Equal([30L, 40, 3], input.shape);
        var rgb = input.data<byte>().ToArray();
        var processor = Florence2Processor.Default with { Width = 64, Height = 48 };
        using var actual = processor.FromRgb(rgb, 40, 30);
        using var expected = Reference("processor_pixel_values");
        Assert.Equal(expected.shape, actual.shape);
        using var diff = (actual.to_type(ScalarType.Float64) - expected).abs().max();
        Assert.True(diff.item<double>() < 1e-5, $"max |diff| = {diff.item<double>()}");
    }

    [Fact]
    public void Processor_reads_the_folder_settings_and_decodes_photos()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        File.WriteAllText(Path.Combine(dir, "preprocessor_config.json"),
            """{"size": {"height": 32, "width": 24}, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 3}""");
        var processor = Florence2Processor.FromFolder(dir);
        Assert.Equal((24, 32), (processor.Width, processor.Height));
        using var bitmap = new SKBitmap(50, 40);
        bitmap.Erase(new SKColor(255, 0, 0));
        using var png = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        using var pixels = processor.FromEncoded(png.ToArray());
        Assert.Equal([1L, 3, 32, 24], pixels.shape);
        // Pure red: R = (1 − 0.5)/0.5 = 1, G = B = −1 everywhere.
        Assert.Equal(1.0, pixels[0, 0].mean().item<float>(), 5);
        Assert.Equal(-1.0, pixels[0, 1].max().item<float>(), 5);
        Assert.Equal(768, Florence2Processor.FromFolder(Directory.CreateTempSubdirectory().FullName).Width);
    }

    /// <summary>A vocabulary in GPT-2's byte alphabet (Ġ is the space byte) with three merges.</summary>
    internal static string WriteSyntheticTokenizer(string dir, IDictionary<string, int>? extra = null)
    {
        var vocab = new Dictionary<string, int> { ["<s>"] = 0, ["<pad>"] = 1, ["</s>"] = 2, ["<unk>"] = 3, ["a"] = 4, ["c"] = 5, ["t"] = 6, ["Ġ"] = 7, ["Ġc"] = 8, ["at"] = 9, ["Ġcat"] = 10, ["."] = 11 };
        foreach (var (k, v) in extra ?? new Dictionary<string, int>()) vocab[k] = v;
        File.WriteAllText(Path.Combine(dir, "vocab.json"), JsonSerializer.Serialize(vocab));
        File.WriteAllLines(Path.Combine(dir, "merges.txt"), ["#version: 0.2", "Ġ c", "a t", "Ġc at"]);
        return dir;
    }

    [Fact]
    public void Tokenizer_encodes_byte_level_bpe_and_decodes_without_special_tokens()
    {
        var tokenizer = Florence2Tokenizer.FromFolder(WriteSyntheticTokenizer(Directory.CreateTempSubdirectory().FullName));
        Assert.Equal([0L, 4, 10, 11, 2], tokenizer.EncodePrompt("a cat."));
        Assert.Equal([0L, 9, 7, 6, 2], tokenizer.EncodePrompt("at t"));
        Assert.Equal([0L, 3, 2], tokenizer.EncodePrompt("z"));
        // Start, end, padding and ids beyond the vocabulary (Florence-2's added location tokens) are dropped.
        Assert.Equal("a cat.", tokenizer.Decode([2, 0, 4, 10, 11, 40, 2, 1, 1]));
    }

    [Fact]
    public void Tokenizer_reads_tokenizer_json_when_vocab_and_merges_are_absent()
    {
        var dir = Directory.CreateTempSubdirectory().FullName;
        WriteSyntheticTokenizer(dir);
        var vocab = File.ReadAllText(Path.Combine(dir, "vocab.json"));
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"),
            "{\"added_tokens\": [{\"id\": 11, \"content\": \".\", \"special\": true}], \"model\": {\"type\": \"BPE\", \"vocab\": " + vocab
            + ", \"merges\": [[\"Ġ\", \"c\"], [\"a\", \"t\"], [\"Ġc\", \"at\"]]}}");
        File.Delete(Path.Combine(dir, "vocab.json"));
        File.Delete(Path.Combine(dir, "merges.txt"));
        var tokenizer = Florence2Tokenizer.FromFolder(dir);
        Assert.Equal([0L, 4, 10, 11, 2], tokenizer.EncodePrompt("a cat."));
        Assert.Equal("a cat", tokenizer.Decode([0, 4, 10, 11, 2]));   // 11 is marked special there
    }
}
