using Likeness.Core.Ports;
using Microsoft.AspNetCore.StaticFiles;

namespace Likeness.Api;

public static class FileEndpoints
{
    private static readonly FileExtensionContentTypeProvider ContentTypes = new();

    public static RouteGroupBuilder MapFiles(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v2/files").WithTags("Files");
        group.MapGet("/{**key}", Download).WithName("DownloadFile").WithSummary("A generated image behind a signed, expiring link (no API key).")
            .Produces<Stream>(contentType: "image/png", additionalContentTypes: ["image/jpeg", "image/webp"])
            .Refuses(403, "link_invalid", "link_expired").Refuses(404, "not_found");
        return group;
    }

    private static async Task<IResult> Download(HttpContext http, FileLinks links, IBlobStore blobs, string key, string? exp, string? sig)
    {
        if (!key.StartsWith("generations/", StringComparison.Ordinal) || key.Contains(".."))
            return Problems.Of(403, "link_invalid", "This link is not valid.");
        switch (links.Check(key, exp, sig))
        {
            case FileLinks.Verdict.Invalid: return Problems.Of(403, "link_invalid", "This link's signature is not valid.");
            case FileLinks.Verdict.Expired: return Problems.Of(403, "link_expired", "This link has expired; fetch the generation again for fresh links.");
        }
        var stream = await blobs.OpenReadAsync(key, http.RequestAborted);
        if (stream is null) return Problems.NotFound("The file");
        if (!ContentTypes.TryGetContentType(key, out var type)) type = "application/octet-stream";
        http.Response.Headers.CacheControl = "private, max-age=3600";
        return TypedResults.Stream(stream, type);
    }
}
