using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Likeness.Api;

/// <summary>
/// The text fields of <c>POST /v2/loras</c> as the contract states them: the OpenAPI document's multipart schema is made
/// from this record (plus the repeated <c>images</c> part), and <c>likeness loras create</c> sends it. The server reads the
/// form itself (<see cref="LoraForm"/>), field by field, so that every refusal names its field.
/// </summary>
public sealed record LoraFormFields(
    [property: Description("The LoRA's name."), StringLength(60, MinimumLength = 1)] string Name,
    [property: Description("person (default), style or object.")] string? SubjectKind = null,
    [property: Description("Required for a person: female, male or non-binary.")] string? Gender = null,
    [property: Description("Required for a person, free text."), StringLength(40, MinimumLength = 1)] string? Ethnicity = null,
    [property: Description("Optional, free text."), StringLength(40, MinimumLength = 1)] string? Age = null,
    [property: Description("Training steps, 500–3000 (the server's floor is configurable); default 1000."), Range(1, 3000)] int? Steps = null,
    [property: Description("LoRA rank, 8–64; default 32 (alpha = rank)."), Range(8, 64)] int? LoraRank = null,
    [property: Description("Absolute https URL notified at READY or FAILED.")] string? WebhookUrl = null,
    [property: Description("Comma-separated subset of completed,failed (default both).")] string? WebhookEvents = null,
    [property: Description("A JSON object of at most 16 string values, echoed on the LoRA and filterable in lists.")] string? Metadata = null)
{
    public const string ImagesField = "images";

    /// <summary>The fields that are set, by their wire names, as multipart text parts.</summary>
    public IEnumerable<KeyValuePair<string, string>> Parts() =>
        JsonSerializer.SerializeToNode(this, ApiJson.Options)!.AsObject()
            .Where(p => p.Value is not null)
            .Select(p => KeyValuePair.Create(p.Key, p.Value is JsonValue v && v.TryGetValue<string>(out var s)
                ? s
                : Convert.ToString(p.Value!.GetValue<int>(), CultureInfo.InvariantCulture)));
}
