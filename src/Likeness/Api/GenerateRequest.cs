using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Likeness.Core.Common;
using Likeness.Core.Generations;

namespace Likeness.Api;

/// <summary>Parses and validates the JSON of <c>POST /v2/images/generate</c> field by field, so every error names its field.</summary>
public static class GenerateRequest
{
    public const int MaxBodyBytes = 64 * 1024;
    public const string Model = "flux-lora";
    public static readonly string[] Formats = ["png", "jpg", "webp"];

    public sealed record Parsed(string Model, string Prompt, GenerationParams Params);

    public static (Parsed? Request, IResult? Problem) Parse(JsonElement root, int baseResolution)
    {
        if (root.ValueKind != JsonValueKind.Object) return (null, Problems.Field("body", "The body must be a JSON object."));
        var errors = new Dictionary<string, string[]>();
        void Fail(string f, string m) => errors[f] = [m];

        var model = root.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString()! : null;
        if (model is null) Fail("model", "model is required: \"flux-lora\".");
        else if (model != Model) return (null, Problems.Of(400, "unsupported_model", $"model '{model}' is not supported; use \"flux-lora\"."));

        string? prompt = null;
        if (!root.TryGetProperty("prompt", out var pr) || pr.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(pr.GetString()))
            Fail("prompt", "prompt is required (1–2000 characters).");
        else if ((prompt = pr.GetString()!).Length > 2000) Fail("prompt", "prompt must be at most 2000 characters.");

        if (!root.TryGetProperty("fluxLoraParams", out var p) || p.ValueKind != JsonValueKind.Object)
        {
            Fail("fluxLoraParams", "fluxLoraParams is required and must hold loraId.");
            return (null, Problems.Validation(errors));
        }

        string? loraId = null;
        if (!p.TryGetProperty("loraId", out var lid) || lid.ValueKind != JsonValueKind.String) Fail("fluxLoraParams.loraId", "loraId is required.");
        else if (!Ids.IsLoraId(loraId = lid.GetString())) return (null, Problems.InvalidId(loraId ?? ""));

        var n = Int(p, "num_outputs", 1, 1, 4, errors);
        var ratio = Str(p, "aspect_ratio", "1:1", AspectRatios.All, errors);
        var format = Str(p, "output_format", "png", Formats, errors);
        var strength = Num(p, "lora_strength", 1.0, 0, 1.5, errors);
        var guidance = Num(p, "guidance_scale", 3.5, 1, 10, errors);
        var steps = Int(p, "num_inference_steps", 28, 4, 50, errors);
        long seed;
        if (p.TryGetProperty("seed", out var s) && s.ValueKind != JsonValueKind.Null)
        {
            if (s.ValueKind != JsonValueKind.Number || !s.TryGetInt64(out seed) || seed < 0 || seed > 9_007_199_254_740_991)
            {
                Fail("fluxLoraParams.seed", "seed must be an integer from 0 to 9007199254740991.");
                seed = 0;
            }
        }
        else seed = RandomNumberGenerator.GetInt32(int.MaxValue);

        if (errors.Count > 0) return (null, Problems.Validation(errors));
        var (w, h) = AspectRatios.Size(ratio, baseResolution);
        return (new Parsed(model!, prompt!, new GenerationParams(loraId!, n, ratio, format, strength, guidance, steps, seed, w, h)), null);
    }

    private static int Int(JsonElement p, string name, int fallback, int min, int max, Dictionary<string, string[]> errors)
    {
        if (!p.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var i) && i >= min && i <= max) return i;
        errors["fluxLoraParams." + name] = [$"{name} must be an integer from {min} to {max}."];
        return fallback;
    }

    private static double Num(JsonElement p, string name, double fallback, double min, double max, Dictionary<string, string[]> errors)
    {
        if (!p.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out var d) && d >= min && d <= max) return d;
        errors["fluxLoraParams." + name] = [$"{name} must be a number from {min.ToString(CultureInfo.InvariantCulture)} to {max.ToString(CultureInfo.InvariantCulture)}."];
        return fallback;
    }

    private static string Str(JsonElement p, string name, string fallback, string[] allowed, Dictionary<string, string[]> errors)
    {
        if (!p.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
        if (v.ValueKind == JsonValueKind.String && allowed.Contains(v.GetString())) return v.GetString()!;
        errors["fluxLoraParams." + name] = [$"{name} must be one of {string.Join(", ", allowed)}."];
        return fallback;
    }
}

/// <summary>
/// The body of <c>POST /v2/images/generate</c> as the contract states it (the OpenAPI schema, and what
/// <c>likeness generate</c> sends). The server parses the JSON itself (<see cref="GenerateRequest"/>), field by field.
/// </summary>
public sealed record GenerateBody(
    [property: Description("Always flux-lora.")] string Model,
    [property: Description("What to draw; the LoRA's trigger word is prepended unless the prompt has it."), StringLength(2000, MinimumLength = 1)] string Prompt,
    FluxLoraParams FluxLoraParams);

/// <summary>The generation's parameters, snake_case as the seed's API; every one but <c>loraId</c> has a default.</summary>
public sealed record FluxLoraParams(
    [property: JsonPropertyName("loraId"), Description("A READY LoRA of the team.")] string LoraId,
    [property: JsonPropertyName("num_outputs"), Range(1, 4), DefaultValue(1)] int? NumOutputs = null,
    [property: JsonPropertyName("aspect_ratio"), DefaultValue("1:1")] string? AspectRatio = null,
    [property: JsonPropertyName("output_format"), DefaultValue("png")] string? OutputFormat = null,
    [property: JsonPropertyName("lora_strength"), Range(0, 1.5), DefaultValue(1.0)] double? LoraStrength = null,
    [property: JsonPropertyName("guidance_scale"), Range(1, 10), DefaultValue(3.5)] double? GuidanceScale = null,
    [property: JsonPropertyName("num_inference_steps"), Range(4, 50), DefaultValue(28)] int? NumInferenceSteps = null,
    [property: JsonPropertyName("seed"), Description("Random when absent (and returned); image i uses seed + i."), Range(0, 9_007_199_254_740_991)] long? Seed = null);
