using System.Diagnostics;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Likeness.Api;

/// <summary>Every refusal: RFC 9457 problem+json with a stable machine <c>code</c> and a <c>traceId</c>; never a stack trace.</summary>
public static class Problems
{
    public static ProblemHttpResult Of(int status, string code, string detail,
        IDictionary<string, string[]>? errors = null, string? title = null)
    {
        var extensions = new Dictionary<string, object?>
        {
            ["code"] = code,
            ["traceId"] = Activity.Current?.Id ?? Guid.NewGuid().ToString("N"),
        };
        if (errors is not null) extensions["errors"] = errors;
        return TypedResults.Problem(
            detail: detail,
            statusCode: status,
            title: title ?? TitleFor(code),
            type: TypeFor(code),
            extensions: extensions);
    }

    public static ProblemHttpResult Validation(IDictionary<string, string[]> errors) =>
        Of(400, "validation_failed", "One or more fields are invalid: " + string.Join(", ", errors.Keys) + ".", errors);

    public static ProblemHttpResult Field(string field, string message) =>
        Validation(new Dictionary<string, string[]> { [field] = [message] });

    public static ProblemHttpResult NotFound(string what = "The resource") => Of(404, "not_found", $"{what} was not found.");
    public static ProblemHttpResult InvalidId(string id) => Of(400, "invalid_id", $"'{Truncate(id)}' is not a well-formed id.");
    public static ProblemHttpResult Unauthorized() =>
        Of(401, "unauthorized", "A valid API key is required: send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'.");

    private static string Truncate(string s) => s.Length <= 64 ? s : s[..64] + "…";

    public static string TypeFor(string code) => $"https://likeness.dev/problems/{code.Replace('_', '-')}";

    public static string TitleFor(string code) => code switch
    {
        "validation_failed" => "Validation failed",
        "unauthorized" => "Unauthorized",
        "insufficient_credits" => "Insufficient credits",
        "not_found" => "Not found",
        "concurrency_limit" => "Too many concurrent trainings",
        "payload_too_large" => "Payload too large",
        "lora_not_ready" => "LoRA not ready",
        "lora_archived" => "LoRA archived",
        _ => string.Join(' ', code.Split('_')) is var t && t.Length > 0 ? char.ToUpperInvariant(t[0]) + t[1..] : code,
    };
}
