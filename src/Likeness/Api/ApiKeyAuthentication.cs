using System.Security.Cryptography;
using Likeness.Core.Common;
using Likeness.Core.Data;
using Microsoft.EntityFrameworkCore;

namespace Likeness.Api;

/// <summary>The authenticated caller: the team and the hash of the key it used (the webhook secret of what it creates).</summary>
public sealed record Caller(string TeamId, string KeyId, byte[] KeyHash);

/// <summary>
/// Authenticates every <c>/v2</c> request except signed file links, before anything reads the body, so that a
/// missing key is always 401 whatever else is wrong with the request.
/// </summary>
public static class ApiKeyAuthentication
{
    private const string CallerItem = "likeness.caller";

    public static IApplicationBuilder UseApiKeys(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        var path = context.Request.Path;
        if (!path.StartsWithSegments("/v2") || path.StartsWithSegments("/v2/files"))
        {
            await next(context);
            return;
        }
        var key = ReadKey(context.Request);
        Caller? caller = null;
        if (key is not null)
        {
            var hash = Hashing.ApiKeyHash(key);
            var db = context.RequestServices.GetRequiredService<LikenessDb>();
            var row = await db.ApiKeys.AsNoTracking()
                .Where(k => k.KeyHash == hash && k.RevokedAt == null)
                .Select(k => new { k.Id, k.TeamId, k.KeyHash })
                .FirstOrDefaultAsync(context.RequestAborted);
            if (row is not null && CryptographicOperations.FixedTimeEquals(row.KeyHash, hash))
                caller = new Caller(row.TeamId, row.Id, hash);
        }
        if (caller is null)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            await Problems.Unauthorized().ExecuteAsync(context);
            return;
        }
        context.Items[CallerItem] = caller;
        await next(context);
    });

    public static Caller Caller(this HttpContext context) =>
        context.Items[CallerItem] as Caller ?? throw new InvalidOperationException("The request was not authenticated.");

    private static string? ReadKey(HttpRequest request)
    {
        var header = request.Headers["X-API-Key"].ToString();
        if (!string.IsNullOrWhiteSpace(header)) return header.Trim();
        var auth = request.Headers.Authorization.ToString();
        const string bearer = "Bearer ";
        if (auth.StartsWith(bearer, StringComparison.OrdinalIgnoreCase) && auth.Length > bearer.Length)
            return auth[bearer.Length..].Trim();
        return null;
    }
}
