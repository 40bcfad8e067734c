using System.Text.Json;
using Likeness.Core.Data;
using Likeness.Core.Generations;

namespace Likeness.Api;

public sealed record GeneratedImageResponse(string Url, int Width, int Height, string ContentType, long Seed);

public sealed record GenerationResponse(
    string Id, string Status, string Model, string Prompt, string LoraId, GenerationParams Params,
    IReadOnlyList<GeneratedImageResponse> Images, long CreditsCharged, LoraError? Error, DateTime CreatedAt, DateTime? CompletedAt)
{
    /// <summary>Every read makes fresh signed links.</summary>
    public static GenerationResponse From(Generation g, FileLinks links) => new(
        g.Id, g.Status, g.Model, g.Prompt, g.LoraId,
        JsonSerializer.Deserialize<GenerationParams>(g.ParamsJson)!,
        g.Images.OrderBy(i => i.Index).Select(i => new GeneratedImageResponse(links.Url(i.BlobKey), i.Width, i.Height, i.ContentType, i.Seed)).ToList(),
        g.CreditsCharged,
        g.ErrorCode is null ? null : new LoraError(g.ErrorCode, g.ErrorMessage ?? g.ErrorCode),
        g.CreatedAt, g.CompletedAt);
}
