using System.Text.Json.Nodes;
using Likeness.Core.Generations;

namespace Likeness.Api;

/// <summary>
/// The OpenAPI document's examples: instances of the response and request records themselves, serialized with the
/// API's own JSON options, so an example cannot drift from the shape it illustrates.
/// </summary>
public static class ApiExamples
{
    private const string LoraId = "lora_01h2xcejqtf2nbrexx3vqjhp41";
    private const string GenerationId = "img_01h2xd3kq8m4r6y7t9v1wz5c2b";
    private static readonly DateTime Created = new(2026, 4, 25, 10, 2, 11, DateTimeKind.Utc);

    private static readonly LoraResponse Lora = new(LoraId, "Alex – studio portraits", "person", "male", "White", null,
        "READY", 18, 1000, 32, IsReady: true, HasWeights: true, TriggerWord: "ZOKRA",
        Progress: new LoraProgress(1000, 1000, 0, LoraProgress.Training), Error: null, Metadata: new JsonObject { ["userId"] = "u_123" },
        Created, Created.AddSeconds(2), Created.AddSeconds(40), Created.AddMinutes(40), ArchivedAt: null);

    private static readonly GenerationParams Params = new(LoraId, 1, "3:4", "png", 1.0, 3.5, 28, 42, 896, 1152);

    private static readonly Dictionary<Type, object> Examples = new()
    {
        [typeof(LoraResponse)] = Lora,
        [typeof(LoraCreated)] = new LoraCreated(LoraId, "PENDING", 18),
        [typeof(TeamResponse)] = new TeamResponse("team_01h2xc9v6n3k8r2t4y7w1z5q0m", "default", 9741, 10, 1),
        [typeof(LedgerItem)] = new LedgerItem(7, -255, 9741, "lora_training", LoraId, null, Created.AddSeconds(40)),
        [typeof(GenerateBody)] = new GenerateBody(GenerateRequest.Model, "a cinematic black-and-white portrait",
            new FluxLoraParams(LoraId, NumOutputs: 1, AspectRatio: "3:4", OutputFormat: "png", Seed: 42)),
        [typeof(GenerationResponse)] = new GenerationResponse(GenerationId, "COMPLETED", GenerateRequest.Model,
            "ZOKRA a cinematic black-and-white portrait", LoraId, Params,
            [new GeneratedImageResponse($"https://likeness.example/v2/files/generations/{GenerationId}/0.png?exp=1777197731&sig=…", 896, 1152, "image/png", 42)],
            2, null, Created.AddHours(1), Created.AddHours(1).AddSeconds(3)),
    };

    public static object? For(Type type) => Examples.GetValueOrDefault(type);

    /// <summary>A typical detail for a problem code's example.</summary>
    public static string Detail(string code) => code switch
    {
        "unauthorized" => "A valid API key is required: send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'.",
        "not_found" => "The LoRA was not found.",
        "invalid_id" => "'lora_123' is not a well-formed id.",
        "validation_failed" => "One or more fields are invalid: name.",
        "too_few_images" => "Upload at least 15 images in 'images' parts; got 14.",
        "insufficient_credits" => "The team's balance is too low.",
        "concurrency_limit" => "The team already has its maximum number of LoRAs in PENDING, UPLOADING or TRAINING; retry when one finishes.",
        "lora_not_ready" => "The LoRA is TRAINING; it must be READY.",
        "link_expired" => "This link has expired; fetch the generation again for fresh links.",
        _ => Problems.TitleFor(code) + ".",
    };
}
