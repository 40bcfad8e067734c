using System.Security.Cryptography;
using System.Text;
using Likeness.Core.Credits;
using Likeness.Core.Data;
using Microsoft.AspNetCore.Http.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Likeness.Api;

/// <summary>
/// <c>Idempotency-Key</c> on the POSTs, per team, kept 24 h. The fingerprint is the request's parsed fields (and the
/// SHA-256 of each file in order), so a retry with a new multipart boundary still matches. Only 2xx responses are
/// kept; after a refusal the key may be used again. The LoRA or generation a request makes is written on the key's
/// row in the transaction that makes it (<see cref="IdempotencyScope"/>): when the response is lost — the client
/// hung up during a synchronous generation, or the process died after the commit — a retry gets that resource as it
/// now is, never a second one.
/// </summary>
public sealed class Idempotency(LikenessDb db, TimeProvider clock, IOptions<JsonOptions> json, IdempotencyScope scope)
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

    /// <summary>
    /// Runs <paramref name="action"/> once per key; <paramref name="render"/> answers for a resource the first request
    /// made but whose response was lost (the resource as it now is).
    /// </summary>
    public async Task<IResult> RunAsync(HttpContext http, string teamId, string endpoint, string fingerprint, Func<Task<IResult>> action,
        Func<string, Task<IResult>> render)
    {
        var key = http.Request.Headers[Header].ToString();
        if (key.Length == 0) return await action();
        var ct = http.RequestAborted;
        var now = clock.GetUtcNow().UtcDateTime;

        var existing = await db.IdempotencyRecords.AsNoTracking().SingleOrDefaultAsync(r => r.TeamId == teamId && r.Key == key, ct);
        if (existing is not null)
        {
            var same = existing.Endpoint == endpoint && existing.Fingerprint == fingerprint;
            // A first request that never answered: if it made its resource, that is the answer; if not, the key is free.
            var abandoned = !existing.Completed && existing.CreatedAt + Abandoned <= now;
            if (abandoned && existing.ResourceId is not null && same)
                return await CompleteFromResourceAsync(teamId, key, existing.ResourceId, render) ?? Replay(existing, endpoint, fingerprint);
            // A stored 202 promised a later answer (a synchronous generate whose client hung up, or whose wait ran out):
            // once the resource has it — 200 for a finished generation — the replay is that answer, stored for the next.
            if (existing is { Completed: true, StatusCode: StatusCodes.Status202Accepted, ResourceId: { } progressed } && same && existing.ExpiresAt > now)
                return await CompleteFromResourceAsync(teamId, key, progressed, render, unlessStatus: StatusCodes.Status202Accepted)
                    ?? Replay(existing, endpoint, fingerprint);
            if (existing.ExpiresAt > now && !(abandoned && existing.ResourceId is null)) return Replay(existing, endpoint, fingerprint);
            await ForgetAsync(teamId, key);
        }

        var record = new IdempotencyRecord
        {
            TeamId = teamId, Key = key, Endpoint = endpoint, Fingerprint = fingerprint,
            CreatedAt = now, ExpiresAt = now + Lifetime,
        };
        // Another request took the key since the look above: answer as a retry of that request would be answered.
        if (await InsertUnlessPresentAsync(record, ct) is { } raced) return Replay(raced, endpoint, fingerprint);

        scope.Current = (teamId, key);
        IResult result;
        try { result = await action(); }
        catch
        {
            await SettleAsync(teamId, key, render);
            throw;
        }
        if (result is JsonResponse { StatusCode: >= 200 and < 300 } ok) await StoreAsync(teamId, key, ok);
        else await SettleAsync(teamId, key, render);
        return result;
    }

    /// <summary>
    /// Inserts the key's row unless one is there, under the team's lock: requests racing on one key queue at the lock
    /// and the later ones find the first one's row, where they would otherwise trip the unique index — a failure EF
    /// Core logs as an error with its stack trace although the race is handled. Returns the row found, or null when
    /// this request's was inserted.
    /// </summary>
    private async Task<IdempotencyRecord?> InsertUnlessPresentAsync(IdempotencyRecord record, CancellationToken ct)
    {
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await CreditLedger.LockTeamAsync(db, record.TeamId, ct);
        var present = await db.IdempotencyRecords.AsNoTracking()
            .SingleOrDefaultAsync(r => r.TeamId == record.TeamId && r.Key == record.Key, ct);
        if (present is not null) return present;
        db.IdempotencyRecords.Add(record);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        return null;
    }

    private Task StoreAsync(string teamId, string key, JsonResponse ok) =>
        db.IdempotencyRecords.Where(r => r.TeamId == teamId && r.Key == key)
            .ExecuteUpdateAsync(s => s
                .SetProperty(r => r.Completed, true)
                .SetProperty(r => r.StatusCode, ok.StatusCode!.Value)
                .SetProperty(r => r.ResponseJson, ok.Serialize(json.Value.SerializerOptions))
                .SetProperty(r => r.Location, ok.Location), CancellationToken.None);

    /// <summary>
    /// After a failed or refused attempt: a key whose request made nothing may be used again; one whose request made
    /// its resource (and then failed to answer) keeps that resource as its response.
    /// </summary>
    private async Task SettleAsync(string teamId, string key, Func<string, Task<IResult>> render)
    {
        var resourceId = await db.IdempotencyRecords.AsNoTracking().Where(r => r.TeamId == teamId && r.Key == key)
            .Select(r => r.ResourceId).SingleOrDefaultAsync(CancellationToken.None);
        if (resourceId is null || await CompleteFromResourceAsync(teamId, key, resourceId, render) is null) await ForgetAsync(teamId, key);
    }

    /// <summary>
    /// Stores the resource's current representation as the key's response and replays it; null if it cannot, or if
    /// its status is still <paramref name="unlessStatus"/> (the stored response stands).
    /// </summary>
    private async Task<IResult?> CompleteFromResourceAsync(string teamId, string key, string resourceId, Func<string, Task<IResult>> render,
        int? unlessStatus = null)
    {
        if (await render(resourceId) is not JsonResponse { StatusCode: >= 200 and < 300 } ok || ok.StatusCode == unlessStatus) return null;
        await StoreAsync(teamId, key, ok);
        return new ReplayResult(ok.StatusCode!.Value, ok.Serialize(json.Value.SerializerOptions), ok.Location);
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
