using System.Text.Json;
using Likeness.Api;
using Likeness.Core.Common;
using Likeness.Core.Data;
using Likeness.Core.Teams;
using Likeness.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Likeness.Tests;

/// <summary>
/// The plain-SQL reads behind authentication, GET one LoRA and the list answer exactly what EF Core answers for the
/// same rows: every column the API record shows (nulls, timestamps' kind) and so the same JSON, tenant isolation,
/// archived ones, each page shape and cursor.
/// </summary>
public sealed class HotReadsTests
{
    [Fact]
    public Task Reads_match_ef_core_on_sqlite() => CompareAsync(new Dictionary<string, string?> { ["Likeness:Role"] = "api" });

    [SkippableFact]
    public async Task Reads_match_ef_core_on_postgres()
    {
        Skip.If(PostgresDatabase.SkipReason is not null, PostgresDatabase.SkipReason);
        await using var pg = await PostgresDatabase.CreateAsync();
        await CompareAsync(new Dictionary<string, string?> { ["Likeness:Database"] = pg.ConnectionString, ["Likeness:Role"] = "api" });
    }

    private static async Task CompareAsync(Dictionary<string, string?> settings)
    {
        await using var server = await LikenessServer.StartAsync(settings);
        var reads = server.App.Services.GetRequiredService<HotReads>();
        var (ours, theirs) = await server.WithDb(async db =>
        {
            var a = await TeamAdmin.CreateTeamAsync(db, "hot-a", 100, 10, TimeProvider.System, default);
            var b = await TeamAdmin.CreateTeamAsync(db, "hot-b", 100, 10, TimeProvider.System, default);
            return (a.Team.Id, b.Team.Id);
        });
        var at = new DateTime(2026, 11, 27, 9, 0, 0, DateTimeKind.Utc).AddTicks(1234567);
        var statuses = new[] { LoraStatus.Pending, LoraStatus.Training, LoraStatus.Ready, LoraStatus.Archived, LoraStatus.Failed };
        var loras = Enumerable.Range(0, 12).Select(i => NewLora(ours, i, statuses[i % statuses.Length],
            // Two pairs share a timestamp, so that the cursor's tie-break on the id is exercised.
            at.AddSeconds(i is 5 or 9 ? i - 1 : i), full: i % 2 == 0)).ToList();
        loras.Add(NewLora(theirs, 99, LoraStatus.Ready, at, full: true));
        await server.WithDb(async db => { db.Loras.AddRange(loras); return await db.SaveChangesAsync(); });

        foreach (var lora in loras.Where(l => l.TeamId == ours))
            AssertSame(await server.WithDb(db => HotQueries.TeamLora(db, lora.Id, ours, default)), await reads.TeamLoraAsync(lora.Id, ours, default));
        Assert.Null(await reads.TeamLoraAsync(loras[^1].Id, ours, default));
        Assert.Null(await reads.TeamLoraAsync(Ids.NewLoraId(), ours, default));

        foreach (var status in new string?[] { null, LoraStatus.Ready, LoraStatus.Archived })
        foreach (var withArchived in new[] { false, true })
        {
            // Walk every page of 3 after every row (and from the start), each against EF's LINQ for the same page.
            foreach (var after in loras.Where(l => l.TeamId == ours).Select(l => (At: l.CreatedAt, Id: (string?)l.Id)).Prepend((default, null)))
            {
                var expected = await server.WithDb(db => EfPage(db, ours, status, withArchived, after.At, after.Id, 3));
                var actual = await reads.TeamLoraPageAsync(ours, status, withArchived, after.At, after.Id, 3, default);
                Assert.Equal(expected.Select(l => l.Id), actual.Select(l => l.Id));
                foreach (var (e, a) in expected.Zip(actual)) AssertSame(e, a);
            }
        }
        Assert.NotEmpty(await reads.TeamLoraPageAsync(ours, LoraStatus.Archived, true, default, null, 3, default));
        Assert.Empty(await reads.TeamLoraPageAsync(ours, LoraStatus.Archived, false, default, null, 3, default));

        var (_, key) = await server.WithDb(db => TeamAdmin.CreateTeamAsync(db, "hot-keys", 0, 1, TimeProvider.System, default));
        var hash = Hashing.ApiKeyHash(key);
        var expectedKey = await server.WithDb(db => db.ApiKeys.AsNoTracking().SingleAsync(k => k.KeyHash == hash));
        Assert.Equal(new ActiveKey(expectedKey.Id, expectedKey.TeamId, expectedKey.KeyHash).ToString(), (await reads.ActiveKeyAsync(hash, default))?.ToString());
        Assert.Equal(hash, (await reads.ActiveKeyAsync(hash, default))!.KeyHash);
        Assert.Null(await reads.ActiveKeyAsync(Hashing.ApiKeyHash(key + "x"), default));
        await server.WithDb(db => TeamAdmin.RevokeKeyAsync(db, key, TimeProvider.System, default));
        Assert.Null(await reads.ActiveKeyAsync(hash, default));
    }

    /// <summary>The page as the list endpoint read it through EF Core before the plain SQL.</summary>
    private static Task<List<Lora>> EfPage(LikenessDb db, string teamId, string? status, bool withArchived, DateTime afterAt, string? afterId, int take) =>
        db.Loras.AsNoTracking()
            .Where(l => l.TeamId == teamId
                && (status == null || l.Status == status)
                && (withArchived || l.Status != LoraStatus.Archived)
                && (afterId == null || l.CreatedAt < afterAt || (l.CreatedAt == afterAt && string.Compare(l.Id, afterId) < 0)))
            .OrderByDescending(l => l.CreatedAt).ThenByDescending(l => l.Id)
            .Take(take).ToListAsync();

    private static Lora NewLora(string teamId, int i, string status, DateTime createdAt, bool full) => new()
    {
        Id = Ids.NewLoraId(), TeamId = teamId, Name = $"hot {i} ✓", SubjectKind = "object", Status = status,
        ImageCount = 15 + i, Steps = 1000 + i, LoraRank = 8 + i, BaseModel = "flux-tiny", TriggerWord = $"h{i:D2}x",
        CreatorKeyHash = [(byte)i, 0, 255, 7], CreditsHeld = 257L * i, CreatedAt = createdAt,
        Gender = full ? "female" : null, Ethnicity = full ? "any" : null, Age = full ? "30" : null,
        ProgressStep = full ? i : null, ProgressTotal = full ? 500 : null, EtaSeconds = full ? 42 : null, Loss = full ? 0.125 + i : null,
        ErrorCode = full ? "training_failed" : null, ErrorMessage = full ? "it broke" : null,
        MetadataJson = full ? """{"k":"v"}""" : null, WebhookUrl = full ? "http://127.0.0.1:1/hook" : null,
        WebhookEvents = full ? "completed" : "completed,failed", Purged = full,
        StartedAt = full ? createdAt.AddMinutes(1) : null, TrainingStartedAt = full ? createdAt.AddMinutes(2).AddTicks(3) : null,
        CompletedAt = full ? createdAt.AddMinutes(3) : null, ArchivedAt = full ? createdAt.AddMinutes(4) : null,
    };

    /// <summary>The entity's columns the hot reads leave unread: the API record does not show them.</summary>
    private static readonly HashSet<string> NotShown =
        [nameof(Lora.BaseModel), nameof(Lora.Loss), nameof(Lora.WebhookUrl), nameof(Lora.WebhookEvents), nameof(Lora.CreatorKeyHash), nameof(Lora.CreditsHeld)];

    /// <summary>
    /// Every other property of the entity, so that a column added to <see cref="Lora"/> and not to the plain SQL fails
    /// here, and the API record made from each, so that a shown field whose column the plain SQL does not read fails too.
    /// </summary>
    private static void AssertSame(Lora? expected, Lora? actual)
    {
        Assert.NotNull(expected);
        Assert.NotNull(actual);
        foreach (var property in typeof(Lora).GetProperties())
        {
            var (e, a) = (property.GetValue(expected), property.GetValue(actual));
            if (NotShown.Contains(property.Name))
            {
                Assert.True(a is null or "" or 0L or byte[] { Length: 0 }, $"{property.Name}: not shown, so not read, yet it is {a}");
                continue;
            }
            Assert.True(Equals(e, a), $"{property.Name}: EF {e}, plain SQL {a}");
            if (e is DateTime ed) Assert.Equal(ed.Kind, ((DateTime)a!).Kind);
        }
        Assert.Equal(JsonSerializer.Serialize(LoraResponse.From(expected)), JsonSerializer.Serialize(LoraResponse.From(actual)));
    }
}
