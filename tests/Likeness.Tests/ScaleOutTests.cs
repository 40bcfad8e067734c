using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Likeness.Tests.Infrastructure;
using Npgsql;
using StandardWebhooks;

namespace Likeness.Tests;

/// <summary>
/// The scale-out topology for real: two API processes and worker processes on one PostgreSQL database and one
/// S3-compatible bucket, with a worker killed mid-training.
/// </summary>
[Collection(ProcessTests.Name)]
public sealed class ScaleOutTests
{
    [SkippableFact]
    public async Task Two_apis_and_workers_share_the_cap_train_each_lora_once_survive_a_killed_worker_and_deliver_every_webhook()
    {
        Skip.If(PostgresDatabase.SkipReason is not null, PostgresDatabase.SkipReason);
        Skip.If(S3Endpoint.SkipReason is not null, S3Endpoint.SkipReason);
        await using var pg = await PostgresDatabase.CreateAsync();
        await using var receiver = await WebhookReceiver.StartAsync();
        var blobs = S3Endpoint.FreshSetting();
        var root = LikenessServer.NewDataFolder();
        string[] Shared(string name) => ["--database", pg.ConnectionString, "--blobs", blobs, "--data", Path.Combine(root, name), "--allow-private-webhooks"];

        var created = await LikenessProcess.RunAsync(["teams", "create", "--name", "scale", "--credits", "100000", "--max-concurrent-trainings", "10", .. Shared("admin")]);
        Assert.StartsWith("team: team_", created[^2]);
        var key = created[^1].Trim();

        var urls = new[] { $"http://127.0.0.1:{LikenessServer.FreePort()}", $"http://127.0.0.1:{LikenessServer.FreePort()}" };
        using var apiA = LikenessProcess.Start(["serve", "--role", "api", "--urls", urls[0], .. Shared("api-a")]);
        using var apiB = LikenessProcess.Start(["serve", "--role", "api", "--urls", urls[1], .. Shared("api-b")]);
        var clients = urls.Select(u => new HttpClient { BaseAddress = new Uri(u), Timeout = TimeSpan.FromMinutes(2) }).ToArray();
        foreach (var c in clients) c.DefaultRequestHeaders.Add("X-API-Key", key);
        await apiA.WaitForHealthAsync(clients[0]);
        await apiB.WaitForHealthAsync(clients[1]);
        Assert.Equal(HttpStatusCode.OK, (await clients[1].GetAsync("/health/ready")).StatusCode);

        // 40 concurrent submissions across both APIs; no worker runs yet, so no slot frees up meanwhile.
        var images = TestImages.Pngs(15, 5000);
        var responses = await Task.WhenAll(Enumerable.Range(0, 40).Select(i => clients[i % 2].PostAsync("/v2/loras",
            LoraForms.Create(images, new Dictionary<string, string> { ["steps"] = "40", ["webhookUrl"] = receiver.Url, ["name"] = $"n{i}" }))));
        var accepted = responses.Where(r => r.StatusCode == HttpStatusCode.Accepted).ToList();
        Assert.Equal(10, accepted.Count);
        Assert.Equal(30, responses.Count(r => r.StatusCode == HttpStatusCode.TooManyRequests));
        var ids = new List<string>();
        foreach (var r in accepted) ids.Add((await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!);
        Assert.Equal(100_000 - 20, (await clients[0].GetFromJsonAsync<JsonElement>("/v2/team")).GetProperty("credits").GetInt64());

        // One worker starts training; it is killed mid-training; two fresh workers take over.
        string victim;
        using (var first = LikenessProcess.Start(["worker", .. Shared("worker-1")]))
        {
            var deadline = DateTime.UtcNow.AddMinutes(2);
            while (true)
            {
                var page = await clients[0].GetFromJsonAsync<JsonElement>("/v2/loras?status=TRAINING");
                var training = page.GetProperty("items").EnumerateArray()
                    .FirstOrDefault(l => l.GetProperty("progress").GetProperty("step").GetInt32() >= 4);
                if (training.ValueKind == JsonValueKind.Object) { victim = training.GetProperty("id").GetString()!; break; }
                Assert.False(first.HasExited, first.Output);
                Assert.True(DateTime.UtcNow < deadline, "no training made progress: " + first.Output);
                await Task.Delay(50);
            }
            first.Kill();
        }
        using var w2 = LikenessProcess.Start(["worker", .. Shared("worker-2")]);
        using var w3 = LikenessProcess.Start(["worker", .. Shared("worker-3")]);
        foreach (var id in ids)
        {
            var lora = await RestartTests.WaitForTerminalAsync(clients[1], id, TimeSpan.FromMinutes(4));
            Assert.True(lora.GetProperty("status").GetString() == "READY", lora.ToString());
        }

        // Exact ledger: every LoRA charged 2 + 255 once, whichever worker trained it and however often it was resumed.
        Assert.Equal(100_000 - 10 * 257, (await clients[1].GetFromJsonAsync<JsonElement>("/v2/team")).GetProperty("credits").GetInt64());
        var ledger = await clients[0].GetFromJsonAsync<JsonElement>("/v2/team/ledger?limit=100");
        var trainingCharges = ledger.GetProperty("items").EnumerateArray().Where(e => e.GetProperty("reason").GetString() == "lora_training")
            .Select(e => e.GetProperty("loraId").GetString()).ToList();
        Assert.Equal(ids.Order(), trainingCharges.Order());

        await using (var connection = new NpgsqlConnection(pg.ConnectionString))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("""SELECT "SubjectId", COUNT(*), MIN("State"), MAX("Attempts") FROM jobs WHERE "Queue" = 'training' GROUP BY "SubjectId" """, connection);
            await using var reader = await command.ExecuteReaderAsync();
            var rows = new Dictionary<string, (long Count, string State, int Attempts)>();
            while (await reader.ReadAsync()) rows[reader.GetString(0)] = (reader.GetInt64(1), reader.GetString(2), reader.GetInt32(3));
            Assert.Equal(ids.Order(), rows.Keys.Order());
            Assert.All(rows.Values, r => Assert.Equal((1L, "done"), (r.Count, r.State))); // one training job per LoRA, finished
            Assert.Equal(2, rows[victim].Attempts); // the killed worker's job was taken over once
        }

        // Every completed event arrives at least once, all attempts of one event under one webhook-id.
        var deadlineHooks = DateTime.UtcNow.AddSeconds(60);
        while (receiver.Deliveries.Select(d => JsonDocument.Parse(d.Body).RootElement.GetProperty("id").GetString()).Distinct().Count() < 10
               && DateTime.UtcNow < deadlineHooks) await Task.Delay(100);
        var verifier = new StandardWebhook("whsec_" + Convert.ToBase64String(SHA256.HashData(Encoding.UTF8.GetBytes(key))));
        var byLora = receiver.Deliveries.GroupBy(d => JsonDocument.Parse(d.Body).RootElement.GetProperty("id").GetString()!).ToList();
        Assert.Equal(ids.Order(), byLora.Select(g => g.Key).Order());
        foreach (var group in byLora)
        {
            Assert.Single(group.Select(d => d.Headers["webhook-id"].ToString()).Distinct());
            foreach (var d in group) verifier.Verify(d.Body, d.Headers);
            Assert.Equal("completed", JsonDocument.Parse(group.First().Body).RootElement.GetProperty("event").GetString());
        }
        try { Directory.Delete(root, recursive: true); } catch (IOException) { }
    }
}
