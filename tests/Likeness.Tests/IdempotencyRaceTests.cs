using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Likeness.Core.Common;
using Likeness.Core.Data;
using Likeness.Core.Loras;
using Likeness.Core.Teams;
using Likeness.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Likeness.Tests;

/// <summary>Handled races — requests on one Idempotency-Key, a trigger word taken concurrently — are ordinary work, not errors in the log.</summary>
public sealed class IdempotencyRaceTests
{
    [Fact]
    public async Task Racing_requests_with_one_key_make_one_lora_and_log_no_database_error()
    {
        var logs = new LogCapture();
        // The API role runs no workers: nothing but the racing requests touches the database.
        await using var server = await LikenessServer.StartAsync(
            new Dictionary<string, string?> { ["Likeness:Role"] = "api" },
            services: logs.AddTo);
        var photos = TestImages.Pngs(15, 780);

        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v2/loras") { Content = LoraForms.Create(photos) };
            request.Headers.Add("Idempotency-Key", "race-1");
            var response = await server.Client.SendAsync(request);
            return (response.StatusCode, Body: await response.Content.ReadAsStringAsync());
        }));

        Assert.All(responses, r => Assert.True(r.StatusCode is HttpStatusCode.Accepted ||
            (r.StatusCode is HttpStatusCode.Conflict && r.Body.Contains("idempotency_in_progress")), $"{r.StatusCode}: {r.Body}"));
        Assert.Equal(1, await server.WithDb(db => db.Loras.CountAsync()));
        var errors = logs.Entries.Where(e => e.Level >= LogLevel.Error).ToList();
        Assert.True(errors.Count == 0, string.Join('\n', errors));
    }

    /// <summary>
    /// On PostgreSQL two teams' creations run at once (each locks only its own team), so a trigger word can be taken by
    /// the other between the check and the insert: the creation tries another word, and the unique-key failure EF Core
    /// met on the way is not logged as an error. (On SQLite every creation holds the write lock: no such race.)
    /// </summary>
    [SkippableFact]
    public async Task A_trigger_word_taken_concurrently_is_replaced_without_an_error_in_the_log()
    {
        Skip.If(PostgresDatabase.SkipReason is not null, PostgresDatabase.SkipReason);
        await using var pg = await PostgresDatabase.CreateAsync();
        var logs = new LogCapture();
        var race = new TakeTheTriggerWordFirst();
        await using var server = await LikenessServer.StartAsync(
            new Dictionary<string, string?>
            {
                ["Likeness:Database"] = pg.ConnectionString, ["Likeness:Role"] = "api", ["Logging:LogLevel:Likeness"] = "Information",
            },
            services: s =>
            {
                logs.AddTo(s);
                s.ConfigureDbContext<PostgresLikenessDb>((sp, o) => o.AddInterceptors(race.For(sp)));
            });
        race.OtherTeam = await server.WithDb(async db => (await TeamAdmin.CreateTeamAsync(db, "other", 0, 1, TimeProvider.System, default)).Team.Id);

        var created = await server.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, 781)));
        Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
        var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        var word = await server.WithDb(db => db.Loras.Where(l => l.Id == id).Select(l => l.TriggerWord).SingleAsync());
        Assert.NotNull(race.TakenWord);
        Assert.NotEqual(race.TakenWord, word);
        Assert.Contains(logs.Entries, e => e.Level == LogLevel.Information && e.Category == typeof(LoraCreation).FullName && e.Message.Contains(race.TakenWord));
        var errors = logs.Entries.Where(e => e.Level >= LogLevel.Error).ToList();
        Assert.True(errors.Count == 0, string.Join('\n', errors));
    }

    /// <summary>Just before the first LoRA insert, another team's creation commits a LoRA with the same trigger word.</summary>
    private sealed class TakeTheTriggerWordFirst
    {
        private int _done;
        public string OtherTeam { get; set; } = "";
        public string? TakenWord { get; private set; }

        public IInterceptor For(IServiceProvider services) => new Interceptor(this, services);

        private sealed class Interceptor(TakeTheTriggerWordFirst race, IServiceProvider services) : SaveChangesInterceptor
        {
            public override async ValueTask<InterceptionResult<int>> SavingChangesAsync(DbContextEventData eventData, InterceptionResult<int> result,
                CancellationToken cancellationToken = default)
            {
                var lora = eventData.Context!.ChangeTracker.Entries<Lora>().FirstOrDefault(e => e.State == EntityState.Added)?.Entity;
                if (lora is null || race.OtherTeam.Length == 0 || Interlocked.Exchange(ref race._done, 1) == 1) return result;
                race.TakenWord = lora.TriggerWord;
                using var scope = services.CreateScope();
                var other = scope.ServiceProvider.GetRequiredService<LikenessDb>();
                other.Loras.Add(new Lora
                {
                    Id = Ids.NewLoraId(), TeamId = race.OtherTeam, Name = "first", SubjectKind = "object", Status = LoraStatus.Pending,
                    BaseModel = lora.BaseModel, TriggerWord = lora.TriggerWord, CreatorKeyHash = [1], CreatedAt = DateTime.UtcNow,
                });
                await other.SaveChangesAsync(cancellationToken);
                return result;
            }
        }
    }
}
