using System.Text.Json;
using System.Text.Json.Nodes;
using Likeness.Core.Loras;

namespace Likeness.Api;

/// <summary>Validates the form fields of <c>POST /v2/loras</c> (everything but the images).</summary>
public static class LoraForm
{
    public static readonly string[] SubjectKinds = ["person", "style", "object"];
    public static readonly string[] Genders = ["female", "male", "non-binary"];
    public static readonly string[] Events = ["completed", "failed"];
    /// <summary>The fields this form reads; any other is ignored.</summary>
    public static readonly string[] Fields =
        ["name", "subjectKind", "gender", "ethnicity", "age", "steps", "loraRank", "webhookUrl", "webhookEvents", "metadata"];

    /// <summary>A repeated key has no single meaning (and <see cref="JsonObject"/> throws on one): refused at the parse.</summary>
    private static readonly JsonDocumentOptions StrictDocument = new() { AllowDuplicateProperties = false };

    /// <param name="f">The fields' values (the first of each).</param>
    /// <param name="overlong">Fields whose value was too long to be kept (see <see cref="LoraUpload"/>): each is refused by name.</param>
    /// <param name="minSteps">The configured floor of <c>steps</c>.</param>
    public static (NewLora? Lora, Dictionary<string, string[]> Errors) Parse(IReadOnlyDictionary<string, string> f,
        IReadOnlyCollection<string> overlong, int minSteps)
    {
        var errors = new Dictionary<string, string[]>();
        void Fail(string field, string message) => errors[field] = [message];

        var name = f.GetValueOrDefault("name")?.Trim();
        if (string.IsNullOrEmpty(name)) Fail("name", "name is required.");
        else if (name.Length > 60) Fail("name", "name must be at most 60 characters.");

        var kind = f.GetValueOrDefault("subjectKind")?.Trim();
        if (string.IsNullOrEmpty(kind)) kind = "person";
        if (!SubjectKinds.Contains(kind)) Fail("subjectKind", "subjectKind must be one of person, style, object.");

        var gender = Optional(f, "gender");
        var ethnicity = Optional(f, "ethnicity");
        var age = Optional(f, "age");
        if (kind == "person")
        {
            if (gender is null) Fail("gender", "gender is required for a person: female, male or non-binary.");
            if (ethnicity is null) Fail("ethnicity", "ethnicity is required for a person (1–40 characters).");
        }
        if (gender is not null && !Genders.Contains(gender)) Fail("gender", "gender must be one of female, male, non-binary.");
        if (ethnicity is { Length: > 40 }) Fail("ethnicity", "ethnicity must be 1–40 characters.");
        if (age is { Length: > 40 }) Fail("age", "age must be 1–40 characters.");

        var steps = Integer(f, "steps", 1000, minSteps, 3000, errors);
        var rank = Integer(f, "loraRank", 32, 8, 64, errors);

        var webhookUrl = Optional(f, "webhookUrl");
        if (webhookUrl is { Length: > 2048 }) Fail("webhookUrl", "webhookUrl must be at most 2048 characters.");
        var events = Optional(f, "webhookEvents") ?? "completed,failed";
        var eventList = events.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (eventList.Length == 0 || eventList.Any(e => !Events.Contains(e)))
            Fail("webhookEvents", "webhookEvents must be a comma-separated subset of completed,failed.");
        else events = string.Join(',', eventList.Distinct());

        string? metadata = null;
        if (Optional(f, "metadata") is { } raw)
        {
            (metadata, var error) = ParseMetadata(raw);
            if (error is not null) Fail("metadata", error);
        }

        foreach (var field in overlong.Where(Fields.Contains)) Fail(field, $"{field} is far longer than it may be.");

        if (errors.Count > 0) return (null, errors);
        return (new NewLora(name!, kind, kind == "person" || gender is not null ? gender : null, ethnicity, age,
            steps, rank, webhookUrl, events, metadata), errors);
    }

    /// <summary>
    /// The caller's map: a JSON object of at most 16 distinct keys whose values are strings of at most 256 characters.
    /// Returns it as compact JSON, or why it is refused.
    /// </summary>
    public static (string? Json, string? Error) ParseMetadata(string raw)
    {
        const string notAnObject = "metadata must be a JSON object of string values, each key once.";
        JsonDocument document;
        try { document = JsonDocument.Parse(raw, StrictDocument); }
        catch (JsonException) { return (null, notAnObject); }
        using (document)
        {
            var obj = document.RootElement;
            if (obj.ValueKind != JsonValueKind.Object) return (null, notAnObject);
            if (!JsonInput.HasValidText(obj)) return (null, "metadata must be valid Unicode text (no lone surrogates).");
            var count = 0;
            foreach (var property in obj.EnumerateObject())
            {
                if (++count > 16) return (null, "metadata may have at most 16 keys.");
                var key = property.Name;
                if (key.Length is 0 or > 256) return (null, "metadata keys must be 1–256 characters.");
                if (property.Value.ValueKind != JsonValueKind.String) return (null, $"metadata.{key} must be a string.");
                if (property.Value.GetString()!.Length > 256) return (null, $"metadata.{key} must be at most 256 characters.");
            }
            return (JsonNode.Parse(raw)!.ToJsonString(), null);
        }
    }

    private static string? Optional(IReadOnlyDictionary<string, string> f, string key)
    {
        var v = f.GetValueOrDefault(key)?.Trim();
        return string.IsNullOrEmpty(v) ? null : v;
    }

    private static int Integer(IReadOnlyDictionary<string, string> f, string key, int fallback, int min, int max, Dictionary<string, string[]> errors)
    {
        var raw = Optional(f, key);
        if (raw is null) return fallback;
        if (!int.TryParse(raw, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var v) || v < min || v > max)
        {
            errors[key] = [$"{key} must be an integer from {min} to {max}."];
            return fallback;
        }
        return v;
    }
}
