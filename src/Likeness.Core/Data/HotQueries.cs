using System.Runtime.CompilerServices;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata;

namespace Likeness.Core.Data;

/// <summary>An active key as authentication needs it: whose it is, and its stored hash for the constant-time compare.</summary>
public sealed record ActiveKey(string Id, string TeamId, byte[] KeyHash);

/// <summary>
/// The reads that nearly every request makes, compiled once. A LINQ query is otherwise walked, its parameters
/// extracted and its cache entry looked up on every call, which issue #11's profile showed costing more than SQLite's
/// own work for a read by primary key. EF binds a compiled query to the model it first ran with, and one process may
/// hold several (a SQLite and a PostgreSQL context type, or hosts with EF service providers of their own, as the test
/// suite runs them): each query is compiled once per model.
/// </summary>
public static class HotQueries
{
    /// <summary>The unrevoked key with this SHA-256, or null (served by the unique index on <c>KeyHash</c>).</summary>
    public static Task<ActiveKey?> ActiveKeyByHash(LikenessDb db, byte[] hash, CancellationToken ct) => ActiveKeyQuery.For(db)(db, hash, ct);

    /// <summary>The team's LoRA with this id, untracked, or null when it is missing or another team's.</summary>
    public static Task<Lora?> TeamLora(LikenessDb db, string id, string teamId, CancellationToken ct) => TeamLoraQuery.For(db)(db, id, teamId, ct);

    /// <summary>
    /// One page of the team's LoRAs, newest first (ties by id), after the cursor's (<c>afterAt</c>, <c>afterId</c>) when <c>afterId</c> is set; <c>status</c> null for any status; ARCHIVED ones only
    /// when <c>withArchived</c>. EF turns a null parameter's test into SQL without it, one cached command per shape.
    /// </summary>
    public static IAsyncEnumerable<Lora> TeamLoraPage(LikenessDb db, string teamId, string? status, bool withArchived, DateTime afterAt, string? afterId, int take) =>
        TeamLoraPageQuery.For(db)(db, teamId, status, withArchived, afterAt, afterId, take);

    /// <summary>One compiled delegate per model, made on the model's first use.</summary>
    private sealed class PerModel<TDelegate>(Func<TDelegate> compile) where TDelegate : class
    {
        private readonly ConditionalWeakTable<IModel, TDelegate> _compiled = new();

        public TDelegate For(LikenessDb db) => _compiled.GetValue(db.Model, _ => compile());
    }

    private static readonly PerModel<Func<LikenessDb, byte[], CancellationToken, Task<ActiveKey?>>> ActiveKeyQuery = new(() =>
        EF.CompileAsyncQuery((LikenessDb db, byte[] hash, CancellationToken ct) => db.ApiKeys.AsNoTracking()
            .Where(k => k.KeyHash == hash && k.RevokedAt == null)
            .Select(k => new ActiveKey(k.Id, k.TeamId, k.KeyHash))
            .FirstOrDefault()));

    private static readonly PerModel<Func<LikenessDb, string, string, CancellationToken, Task<Lora?>>> TeamLoraQuery = new(() =>
        EF.CompileAsyncQuery((LikenessDb db, string id, string teamId, CancellationToken ct) => db.Loras.AsNoTracking()
            .SingleOrDefault(l => l.Id == id && l.TeamId == teamId)));

    private static readonly PerModel<Func<LikenessDb, string, string?, bool, DateTime, string?, int, IAsyncEnumerable<Lora>>> TeamLoraPageQuery = new(() =>
        EF.CompileAsyncQuery((LikenessDb db, string teamId, string? status, bool withArchived, DateTime afterAt, string? afterId, int take) =>
            db.Loras.AsNoTracking()
                .Where(l => l.TeamId == teamId
                    && (status == null || l.Status == status)
                    && (withArchived || l.Status != LoraStatus.Archived)
                    && (afterId == null || l.CreatedAt < afterAt || (l.CreatedAt == afterAt && string.Compare(l.Id, afterId) < 0)))
                .OrderByDescending(l => l.CreatedAt).ThenByDescending(l => l.Id)
                .Take(take)));
}
