using Likeness.Core.Data;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.EntityFrameworkCore;

namespace Likeness.Api;

public sealed record TeamResponse(string Id, string Name, long Credits, int MaxConcurrentTrainings, int ActiveTrainings);

public sealed record LedgerItem(long Id, long Amount, long BalanceAfter, string Reason, string? LoraId, string? GenerationId, DateTime CreatedAt);

public static class TeamEndpoints
{
    public static RouteGroupBuilder MapTeam(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v2/team").WithTags("Team").Refuses(401, "unauthorized");
        group.MapGet("/", Get).WithName("GetTeam").WithSummary("The caller's team: credits, cap and active trainings.")
            .Produces<TeamResponse>();
        group.MapGet("/ledger", Ledger).WithName("ListLedger").WithSummary("Every charge, refund and grant, newest first.")
            .Refuses(400, "validation_failed", "invalid_cursor");
        return group;
    }

    private static async Task<IResult> Get(HttpContext http, LikenessDb db)
    {
        var teamId = http.Caller().TeamId;
        var team = await db.Teams.AsNoTracking().SingleAsync(t => t.Id == teamId, http.RequestAborted);
        var active = await db.Loras.CountAsync(l => l.TeamId == teamId && LoraStatus.Active.Contains(l.Status), http.RequestAborted);
        return TypedResults.Ok(new TeamResponse(team.Id, team.Name, team.Credits, team.MaxConcurrentTrainings, active));
    }

    private static async Task<Results<Ok<Page<LedgerItem>>, ProblemHttpResult>> Ledger(HttpContext http, LikenessDb db, string? cursor, string? limit)
    {
        var teamId = http.Caller().TeamId;
        if (Cursor.ParseLimit(limit, out var take) is { } badLimit) return badLimit;
        long? before = null;
        if (cursor is not null)
        {
            // Ledger ids grow with every entry, so the id alone orders the ledger (newest first, ties impossible).
            if (!Cursor.TryDecode(cursor, out var c) || c is null || !long.TryParse(c.Id, out var id))
                return Problems.Of(400, "invalid_cursor", "The cursor is not one this API returned.");
            before = id;
        }
        var query = db.Ledger.AsNoTracking().Where(e => e.TeamId == teamId);
        if (before is not null) query = query.Where(e => e.Id < before);
        var rows = await query.OrderByDescending(e => e.Id).Take(take + 1)
            .Select(e => new LedgerItem(e.Id, e.Amount, e.BalanceAfter, e.Reason, e.LoraId, e.GenerationId, e.CreatedAt))
            .ToListAsync(http.RequestAborted);
        var next = rows.Count > take ? new Cursor(0, rows[take - 1].Id.ToString(System.Globalization.CultureInfo.InvariantCulture)).Encode() : null;
        return TypedResults.Ok(new Page<LedgerItem>(rows.Take(take).ToList(), next));
    }
}
