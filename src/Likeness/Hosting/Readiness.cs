using Likeness.Api;
using Likeness.Core.Data;
using Likeness.Core.Ports;

namespace Likeness.Hosting;

/// <summary><c>/health/ready</c>: 200 when the database and the blob store answer, 503 (problem+json) when either does not.</summary>
public static class Readiness
{
    public static async Task<IResult> CheckAsync(LikenessDb db, IBlobStore blobs, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        var database = await Probe(() => db.Database.CanConnectAsync(timeout.Token));
        var storage = await Probe(async () => { await blobs.ExistsAsync("health/probe", timeout.Token); return true; });
        if (database && storage) return TypedResults.Ok(new { status = "ready", database = "ok", storage = "ok" });
        return Problems.Of(503, "not_ready",
            $"Not ready: database {(database ? "ok" : "unreachable")}, storage {(storage ? "ok" : "unreachable")}.");
    }

    private static async Task<bool> Probe(Func<Task<bool>> check)
    {
        try { return await check(); }
        catch (Exception) { return false; }
    }
}
