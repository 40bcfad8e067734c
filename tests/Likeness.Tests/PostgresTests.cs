using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Likeness.Core.Data;
using Likeness.Api;
using Likeness.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace Likeness.Tests;

/// <summary>The service on PostgreSQL: the same contract, with the cap and charges holding under concurrency.</summary>
public sealed class PostgresTests
{
    private static Dictionary<string, string?> On(PostgresDatabase pg, string role = "all") => new()
    {
        ["Likeness:Database"] = pg.ConnectionString,
        ["Likeness:Role"] = role,
    };

    [SkippableFact]
    public async Task Starts_on_a_fresh_database_and_makes_the_file_link_secret_once_without_an_error_in_the_log()
    {
        Skip.If(PostgresDatabase.SkipReason is not null, PostgresDatabase.SkipReason);
        await using var pg = await PostgresDatabase.CreateAsync();
        var logs = new LogCapture();
        // The first start migrates a database without the migrations history table.
        await using var server = await LikenessServer.StartAsync(On(pg, "api"), services: logs.AddTo);
        var secret = await server.WithDb(db => db.ServerSecrets.SingleAsync(s => s.Name == FileLinks.SecretName));

        // Nodes starting together all find no secret and all make one: the first insert wins, the others read it.
        await server.WithDb(db => db.ServerSecrets.ExecuteDeleteAsync());
        var nodes = Enumerable.Range(0, 6).Select(_ => ActivatorUtilities.CreateInstance<FileLinks>(server.App.Services)).ToList();
        await Task.WhenAll(nodes.Select(async links =>
        {
            using var scope = server.App.Services.CreateScope();
            await links.LoadSecretAsync(scope.ServiceProvider.GetRequiredService<LikenessDb>(), default);
        }));
        var made = await server.WithDb(db => db.ServerSecrets.SingleAsync());
        Assert.NotEqual(secret.Value, made.Value);
        // Every node signs with the one secret that was kept.
        Assert.Single(nodes.Select(n => n.Url("x", DateTimeOffset.UnixEpoch)).Distinct());

        var errors = logs.Entries.Where(e => e.Level >= LogLevel.Error).ToList();
        Assert.True(errors.Count == 0, string.Join('\n', errors));
    }

    [SkippableFact]
    public async Task Nodes_starting_together_on_a_fresh_database_migrate_it_once_without_colliding()
    {
        Skip.If(PostgresDatabase.SkipReason is not null, PostgresDatabase.SkipReason);
        await using var pg = await PostgresDatabase.CreateAsync();
        var options = new DbContextOptionsBuilder<PostgresLikenessDb>().UseNpgsql(pg.ConnectionString).Options;
        // Four processes' first starts at once: each creates the history table if missing, then applies the migrations.
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            await using var db = new PostgresLikenessDb(options);
            await DatabaseSetup.MigrateAsync(db, default);
        })));
        await using var check = new PostgresLikenessDb(options);
        Assert.Empty(await check.Database.GetPendingMigrationsAsync());
        Assert.Equal((await check.Database.GetAppliedMigrationsAsync()).Count(), check.Database.GetMigrations().Count());
    }

    [SkippableFact]
    public async Task Accepts_exactly_the_cap_out_of_50_concurrent_submissions_on_postgres()
    {
        Skip.If(PostgresDatabase.SkipReason is not null, PostgresDatabase.SkipReason);
        await using var pg = await PostgresDatabase.CreateAsync();
        await using var server = await LikenessServer.StartAsync(On(pg, "api"));
        var images = TestImages.Pngs(15);
        var before = await server.CreditsAsync();
        var responses = await Task.WhenAll(Enumerable.Range(0, 50).Select(async _ =>
        {
            using var client = server.CreateClient(server.ApiKey);
            return await client.PostAsync("/v2/loras", LoraForms.Create(images));
        }));
        var statuses = string.Join(", ", responses.GroupBy(r => (int)r.StatusCode).Select(g => $"{g.Key}×{g.Count()}"));
        Assert.True(responses.Count(r => r.StatusCode == HttpStatusCode.Accepted) == 10, statuses);
        Assert.True(responses.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests) == 40, statuses);
        Assert.Equal(before - 20, await server.CreditsAsync());
        Assert.Equal(10, await server.WithDb(db => db.Loras.CountAsync()));
    }

    [SkippableFact]
    public async Task Trains_and_generates_on_postgres_with_exact_credits()
    {
        Skip.If(PostgresDatabase.SkipReason is not null, PostgresDatabase.SkipReason);
        await using var pg = await PostgresDatabase.CreateAsync();
        await using var server = await LikenessServer.StartAsync(On(pg));
        var before = await server.CreditsAsync();
        var created = await server.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, 50)));
        var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        var (lora, seen) = await server.WaitForLoraAsync(id, l => l.GetProperty("status").GetString() is "READY" or "FAILED");
        Assert.True(lora.GetProperty("status").GetString() == "READY", lora.ToString());
        Assert.Contains("TRAINING", seen);
        var generate = await server.Client.PostAsJsonAsync("/v2/images/generate", new
        {
            model = "flux-lora", prompt = "portrait", fluxLoraParams = new { loraId = id, num_outputs = 2, num_inference_steps = 4, seed = 3 },
        });
        var generation = await generate.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("COMPLETED", generation.GetProperty("status").GetString());
        Assert.Equal(before - 261, await server.CreditsAsync());

        // Paging and the ledger on PostgreSQL's collation and timestamps.
        var list = await server.GetJsonAsync("/v2/loras?limit=1");
        Assert.Equal(id, list.GetProperty("items")[0].GetProperty("id").GetString());
        var ledger = await server.GetJsonAsync("/v2/team/ledger?limit=2");
        Assert.Equal("generation", ledger.GetProperty("items")[0].GetProperty("reason").GetString());
        var next = ledger.GetProperty("nextCursor").GetString();
        var page2 = await server.GetJsonAsync($"/v2/team/ledger?limit=2&cursor={next}");
        Assert.Equal("lora_create", page2.GetProperty("items")[0].GetProperty("reason").GetString());
        Assert.Equal(200, (int)(await server.Client.GetAsync("/health/ready")).StatusCode);
    }
}
