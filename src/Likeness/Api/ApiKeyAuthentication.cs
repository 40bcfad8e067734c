using System.Security.Cryptography;
using Likeness.Core.Common;
using Likeness.Core.Data;
using Likeness.Core.Teams;

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
        if (key is null)
        {
            await RefuseAsync(context);
            return;
        }
        var hash = Hashing.ApiKeyHash(key);
        var row = await FindAsync(context.RequestServices, hash, context.RequestAborted);
        if (row is null || !CryptographicOperations.FixedTimeEquals(row.KeyHash, hash))
        {
            await RefuseAsync(context);
            return;
        }
        context.Items[CallerItem] = new Caller(row.TeamId, row.Id, hash);
        await next(context);
    });

    /// <summary>
    /// The active key with this hash: from the process's cache when it read the key in the last few seconds, else from
    /// the database (a plain prepared read, no EF context). See <see cref="ApiKeyCache"/> for what a revocation waits for.
    /// </summary>
    private static async ValueTask<ActiveKey?> FindAsync(IServiceProvider services, byte[] hash, CancellationToken ct)
    {
        var cache = services.GetRequiredService<ApiKeyCache>();
        if (cache.TryGet(hash, out var cached)) return cached;
        var version = cache.Version;
        var row = await services.GetRequiredService<HotReads>().ActiveKeyAsync(hash, ct);
        if (row is not null) cache.Add(row, version);
        return row;
    }

    private static Task RefuseAsync(HttpContext context)
    {
        context.Response.Headers.WWWAuthenticate = "Bearer";
        return Problems.Unauthorized().ExecuteAsync(context);
    }

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
