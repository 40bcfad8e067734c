using System.Security.Cryptography;
using System.Text;
using Likeness.Core.Data;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Likeness.Api;

/// <summary>
/// <c>Idempotency-Key</c> on the POSTs, per team, kept 24 h. The fingerprint is the request's parsed fields (and the
/// SHA-256 of each file in order), so a retry with a new multipart boundary still matches. Only 2xx responses are
/// kept; after a refusal the key may be used again.
/// </summary>
public sealed class Idempotency(LikenessDb db, TimeProvider clock, IOptions<JsonOptions> json)
{
    public const string Header = "Idempotency-Key";
    private static readonly TimeSpan Lifetime = TimeSpan.FromHours(24);
    /// <summary>A first request that never finished (its process died) stops blocking the key after this long.</summary>
    private static readonly TimeSpan Abandoned = TimeSpan.FromMinutes(10);

    public static string Fingerprint(string endpoint, IEnumerable<string> parts)
    {
        var text = endpoint + "\n" + string.Join("\n", parts);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
    }

    /// <summary>Checks the key's form before the request is processed; null when fine.</summary>
    public static IResult? CheckKey(HttpRequest request)
    {
        var key = request.Headers[Header].ToString();
        if (request.Headers.ContainsKey(Header) && (key.Length is 0 or > 255))
            return Problems.Field(Header, "The Idempotency-Key must be 1 to 255 characters.");
        return null;
    }

    public async Task<IResult> RunAsync(HttpContext http, string teamId, string endpoint, string fingerprint, Func<Task<IResult>> action)
    {
        var key = http.Request.Headers[Header].ToString();
        if (key.Length == 0) return await action();
        var ct = http.RequestAborted;
        var now = clock.GetUtcNow().UtcDateTime;

        var existing = await db.IdempotencyRecords.SingleOrDefaultAsync(r => r.TeamId == teamId && r.Key == key, ct);
        if (existing is not null && (existing.ExpiresAt <= now || (!existing.Completed && existing.CreatedAt + Abandoned <= now)))
        {
            db.IdempotencyRecords.Remove(existing);
            await db.SaveChangesAsync(ct);
            existing = null;
        }
        if (existing is not null) return Replay(existing, endpoint, fingerprint);

        var record = new IdempotencyRecord
        {
            TeamId = teamId, Key = key, Endpoint = endpoint, Fingerprint = fingerprint,
            CreatedAt = now, ExpiresAt = now + Lifetime,
        };
        db.IdempotencyRecords.Add(record);
        try { await db.SaveChangesAsync(ct); }
        catch (DbUpdateException)
        {
            db.ChangeTracker.Clear();
            var raced = await db.IdempotencyRecords.AsNoTracking().SingleAsync(r => r.TeamId == teamId && r.Key == key, ct);
            return Replay(raced, endpoint, fingerprint);
        }

        IResult result;
        try { result = await action(); }
        catch
        {
            await ForgetAsync(teamId, key);
            throw;
        }
        if (result is JsonResponse { StatusCode: >= 200 and < 300 } ok)
        {
            await db.IdempotencyRecords.Where(r => r.TeamId == teamId && r.Key == key)
                .ExecuteUpdateAsync(s => s
                    .SetProperty(r => r.Completed, true)
                    .SetProperty(r => r.StatusCode, ok.StatusCode!.Value)
                    .SetProperty(r => r.ResponseJson, ok.Serialize(json.Value.SerializerOptions))
                    .SetProperty(r => r.Location, ok.Location), CancellationToken.None);
        }
        else await ForgetAsync(teamId, key);
        return result;
    }

    private Task ForgetAsync(string teamId, string key) =>
        db.IdempotencyRecords.Where(r => r.TeamId == teamId && r.Key == key).ExecuteDeleteAsync(CancellationToken.None);

    private static IResult Replay(IdempotencyRecord r, string endpoint, string fingerprint)
    {
        if (r.Endpoint != endpoint || r.Fingerprint != fingerprint)
            return Problems.Of(422, "idempotency_key_reused", "This Idempotency-Key was already used with a different request.");
        if (!r.Completed)
            return Problems.Of(409, "idempotency_in_progress", "A request with this Idempotency-Key is still being processed; retry shortly.");
        return new ReplayResult(r.StatusCode, r.ResponseJson ?? "{}", r.Location);
    }

    private sealed class ReplayResult(int status, string json, string? location) : IResult
    {
        public async Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.StatusCode = status;
            httpContext.Response.Headers["Idempotent-Replayed"] = "true";
            if (location is not null) httpContext.Response.Headers.Location = location;
            httpContext.Response.ContentType = "application/json; charset=utf-8";
            await httpContext.Response.WriteAsync(json);
        }
    }
}
