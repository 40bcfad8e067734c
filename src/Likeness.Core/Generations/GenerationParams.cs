using System.Text.Json.Serialization;

namespace Likeness.Core.Generations;

/// <summary>The resolved <c>fluxLoraParams</c> of a generation (snake_case, as the API's).</summary>
public sealed record GenerationParams(
    [property: JsonPropertyName("loraId")] string LoraId,
    [property: JsonPropertyName("num_outputs")] int NumOutputs,
    [property: JsonPropertyName("aspect_ratio")] string AspectRatio,
    [property: JsonPropertyName("output_format")] string OutputFormat,
    [property: JsonPropertyName("lora_strength")] double LoraStrength,
    [property: JsonPropertyName("guidance_scale")] double GuidanceScale,
    [property: JsonPropertyName("num_inference_steps")] int NumInferenceSteps,
    [property: JsonPropertyName("seed")] long Seed,
    [property: JsonPropertyName("width")] int Width,
    [property: JsonPropertyName("height")] int Height);

public static class AspectRatios
{
    public static readonly string[] All = ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"];

    /// <summary>The model's base area (base²) at the given ratio, each side rounded to a multiple of 16.</summary>
    public static (int Width, int Height) Size(string ratio, int baseResolution)
    {
        var parts = ratio.Split(':');
        double rw = int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture);
        double rh = int.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
        var area = (double)baseResolution * baseResolution;
        var width = Math.Sqrt(area * rw / rh);
        var height = width * rh / rw;
        return (Round16(width), Round16(height));
    }

    private static int Round16(double v) => Math.Max(16, (int)Math.Round(v / 16.0, MidpointRounding.AwayFromZero) * 16);
}

public static class TriggerPrompt
{
    /// <summary>
    /// Keeps the prompt when it already holds the trigger word as a word (any case, bounded by non-letters),
    /// otherwise prepends "TRIGGER ".
    /// </summary>
    public static string Apply(string prompt, string triggerWord)
    {
        var at = 0;
        while ((at = prompt.IndexOf(triggerWord, at, StringComparison.OrdinalIgnoreCase)) >= 0)
        {
            var before = at == 0 || !char.IsLetter(prompt[at - 1]);
            var end = at + triggerWord.Length;
            var after = end == prompt.Length || !char.IsLetter(prompt[end]);
            if (before && after) return prompt;
            at++;
        }
        return $"{triggerWord} {prompt}";
    }
}
