using System.Runtime.CompilerServices;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Metadata;

namespace Likeness.Core.Data;

/// <summary>
/// The team's LoRA by id, which most LoRA endpoints read first, compiled once (the GET and list endpoints, the hottest,
/// read through <see cref="HotReads"/> instead). A LINQ query is otherwise walked, its parameters
/// extracted and its cache entry looked up on every call, which issue #11's profile showed costing more than SQLite's
/// own work for a read by primary key. EF binds a compiled query to the model it first ran with, and one process may
/// hold several (a SQLite and a PostgreSQL context type, or hosts with EF service providers of their own, as the test
/// suite runs them): each query is compiled once per model.
/// </summary>
public static class HotQueries
{
    /// <summary>The team's LoRA with this id, untracked, or null when it is missing or another team's.</summary>
    public static Task<Lora?> TeamLora(LikenessDb db, string id, string teamId, CancellationToken ct) => TeamLoraQuery.For(db)(db, id, teamId, ct);

    /// <summary>One compiled delegate per model, made on the model's first use.</summary>
    private sealed class PerModel<TDelegate>(Func<TDelegate> compile) where TDelegate : class
    {
        private readonly ConditionalWeakTable<IModel, TDelegate> _compiled = new();

        public TDelegate For(LikenessDb db) => _compiled.GetValue(db.Model, _ => compile());
    }

    private static readonly PerModel<Func<LikenessDb, string, string, CancellationToken, Task<Lora?>>> TeamLoraQuery = new(() =>
        EF.CompileAsyncQuery((LikenessDb db, string id, string teamId, CancellationToken ct) => db.Loras.AsNoTracking()
            .SingleOrDefault(l => l.Id == id && l.TeamId == teamId)));
}
