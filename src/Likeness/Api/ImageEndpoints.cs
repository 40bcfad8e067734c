using System.Text.Json;
using Likeness.Core.Common;
using Likeness.Core.Data;
using Likeness.Core.Generations;
using Likeness.Core.Ports;
using Likeness.Hosting;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Likeness.Api;

public static class ImageEndpoints
{
    public static RouteGroupBuilder MapImages(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v2/images").WithTags("Images").Refuses(401, "unauthorized");
        group.MapPost("/generate", Generate).WithName("GenerateImages")
            .WithSummary("Generate 1–4 photos with a READY LoRA; waits up to 60 s unless 'Prefer: respond-async'.")
            .Reads<GenerateBody>("application/json")
            .Produces<GenerationResponse>(StatusCodes.Status200OK)
            .Produces<GenerationResponse>(StatusCodes.Status202Accepted)
            .Refuses(400, "validation_failed", "unsupported_model", "invalid_id")
            .Refuses(402, "insufficient_credits")
            .Refuses(404, "not_found")
            .Refuses(409, "lora_not_ready", "idempotency_in_progress")
            .Refuses(410, "lora_archived")
            .Refuses(413, "payload_too_large")
            .Refuses(422, "idempotency_key_reused");
        group.MapGet("/{id}", Get).WithName("GetGeneration").WithSummary("A generation, with fresh signed image links.")
            .Produces<GenerationResponse>().Refuses(400, "invalid_id").Refuses(404, "not_found");
        return group;
    }

    private static async Task<IResult> Generate(HttpContext http, LikenessDb db, GenerationCreation creation, Idempotency idempotency,
        FileLinks links, IImageGenerator engine, IOptions<LikenessOptions> options)
    {
        var caller = http.Caller();
        var ct = http.RequestAborted;
        if (Idempotency.CheckKey(http.Request) is { } badKey) return badKey;
        if (http.Request.ContentLength > GenerateRequest.MaxBodyBytes)
            return Problems.Of(413, "payload_too_large", $"The body may be at most {GenerateRequest.MaxBodyBytes} bytes.");

        JsonDocument document;
        try
        {
            using var limited = new MemoryStream();
            var buffer = new byte[8192];
            int n;
            while ((n = await http.Request.Body.ReadAsync(buffer, ct)) > 0)
            {
                if (limited.Length + n > GenerateRequest.MaxBodyBytes)
                    return Problems.Of(413, "payload_too_large", $"The body may be at most {GenerateRequest.MaxBodyBytes} bytes.");
                limited.Write(buffer, 0, n);
            }
            document = JsonDocument.Parse(limited.ToArray());
        }
        catch (JsonException ex) { return Problems.Field("body", "The body is not valid JSON: " + ex.Message); }

        using (document)
        {
            if (!JsonInput.HasValidText(document.RootElement))
                return Problems.Field("body", "The body's strings must be valid Unicode text (UTF-8, no lone surrogates).");
            var (request, problem) = GenerateRequest.Parse(document.RootElement, engine.BaseResolution);
            if (problem is not null) return problem;
            var fingerprint = Idempotency.Fingerprint("POST /v2/images/generate", [document.RootElement.GetRawText()]);
            var respondAsync = http.Request.Headers["Prefer"].Any(v => v != null && v.Contains("respond-async", StringComparison.OrdinalIgnoreCase));

            return await idempotency.RunAsync(http, caller.TeamId, "POST /v2/images/generate", fingerprint, async () =>
            {
                var (refusal, generation) = await creation.CreateAsync(caller.TeamId, request!.Prompt, request.Params, ct);
                switch (refusal)
                {
                    case GenerationRefusal.NotFound: return Problems.NotFound("The LoRA");
                    case GenerationRefusal.Archived: return Problems.Of(410, "lora_archived", "The LoRA is archived; new generations with it are refused.");
                    case GenerationRefusal.NotReady:
                        return Problems.Of(409, "lora_not_ready", $"Only a READY LoRA can generate; GET /v2/loras/{request.Params.LoraId} says what this one is.");
                    case GenerationRefusal.InsufficientCredits:
                        return Problems.Of(402, "insufficient_credits",
                            $"{request.Params.NumOutputs} image(s) cost {GenerationCreation.CreditsPerImage * request.Params.NumOutputs} credits; the team's balance is too low.");
                }

                var location = $"/v2/images/{generation!.Id}";
                if (!respondAsync)
                {
                    var deadline = DateTime.UtcNow + options.Value.Generation.SyncWait;
                    while (DateTime.UtcNow < deadline && !ct.IsCancellationRequested)
                    {
                        var status = await db.Generations.AsNoTracking().Where(g => g.Id == generation.Id).Select(g => g.Status).SingleAsync(ct);
                        if (GenerationStatus.IsTerminal(status))
                            return new JsonResponse(StatusCodes.Status200OK, GenerationResponse.From(await Load(db, generation.Id, ct), links), location);
                        await Task.Delay(100, ct);
                    }
                }
                var current = GenerationResponse.From(await Load(db, generation.Id, ct), links);
                var headers = respondAsync ? new Dictionary<string, string> { ["Preference-Applied"] = "respond-async" } : null;
                return new JsonResponse(StatusCodes.Status202Accepted, current, location, headers);
            }, async id =>
            {
                // The generation as it now is: 200 once finished, 202 while it runs.
                var g = await Load(db, id, CancellationToken.None);
                return new JsonResponse(GenerationStatus.IsTerminal(g.Status) ? StatusCodes.Status200OK : StatusCodes.Status202Accepted,
                    GenerationResponse.From(g, links), $"/v2/images/{id}");
            });
        }
    }

    private static async Task<IResult> Get(HttpContext http, LikenessDb db, FileLinks links, string id)
    {
        if (!Ids.IsGenerationId(id)) return Problems.InvalidId(id);
        var teamId = http.Caller().TeamId;
        var g = await db.Generations.AsNoTracking().Include(x => x.Images)
            .SingleOrDefaultAsync(x => x.Id == id && x.TeamId == teamId, http.RequestAborted);
        return g is null ? Problems.NotFound("The generation") : TypedResults.Ok(GenerationResponse.From(g, links));
    }

    private static Task<Generation> Load(LikenessDb db, string id, CancellationToken ct) =>
        db.Generations.AsNoTracking().Include(x => x.Images).SingleAsync(x => x.Id == id, ct);
}
