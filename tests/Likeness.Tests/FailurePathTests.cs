using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Likeness.Api;
using Likeness.Core.Data;
using Likeness.Core.Teams;
using Likeness.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Likeness.Tests;

/// <summary>Each way a LoRA or a generation can fail, produced for real, ends clean: FAILED, refunded, ledger exact.</summary>
[Collection(ProcessTests.Name)]
public sealed class FailurePathTests
{
    private static Dictionary<string, string?> Api(params (string, string)[] extra)
    {
        var settings = new Dictionary<string, string?> { ["Likeness:Role"] = "api" };
        foreach (var (k, v) in extra) settings[k] = v;
        return settings;
    }

    private static async Task<string> CreateAsync(HttpClient client, int seed)
    {
        var response = await client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, seed)));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    /// <summary>A READY LoRA trained by a full server in a fresh data folder, which outlives that server.</summary>
    private static async Task<(string Data, string LoraId)> ReadyLoraAsync(int seed)
    {
        var data = LikenessServer.NewDataFolder();
        await using var trainer = await LikenessServer.StartAsync(dataFolder: data);
        var loraId = await CreateAsync(trainer.Client, seed);
        var (ready, _) = await trainer.WaitForLoraAsync(loraId, l => l.GetProperty("status").GetString() is "READY" or "FAILED");
        Assert.Equal("READY", ready.GetProperty("status").GetString());
        return (data, loraId);
    }

    [Fact]
    public async Task A_team_that_cannot_pay_for_training_gets_insufficient_credits_and_its_upload_fee_back()
    {
        await using var server = await LikenessServer.StartAsync();
        var (_, key) = await server.WithDb(db => TeamAdmin.CreateTeamAsync(db, "two-credits", 2, 10, TimeProvider.System, default));
        var client = server.CreateClient(key);
        var id = await CreateAsync(client, 0);
        var (lora, _) = await server.WaitForLoraAsync(id, l => l.GetProperty("status").GetString() is "READY" or "FAILED", client: client);
        Assert.Equal("FAILED", lora.GetProperty("status").GetString());
        Assert.Equal("insufficient_credits", lora.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(2, await server.CreditsAsync(client));
        // The worker may settle before any poll: the ledger shows the whole story.
        var ledger = (await server.GetJsonAsync("/v2/team/ledger", client)).GetProperty("items").EnumerateArray()
            .Select(e => (e.GetProperty("reason").GetString(), e.GetProperty("amount").GetInt64())).ToList();
        Assert.Equal([("refund", 2L), ("lora_create", -2L), ("grant", 2L)], ledger);
    }

    [Fact]
    public async Task Photos_lost_from_storage_fail_the_dataset_and_refund_the_upload_fee()
    {
        var data = LikenessServer.NewDataFolder();
        string id;
        long before;
        await using (var api = await LikenessServer.StartAsync(Api(), data))
        {
            before = await api.CreditsAsync();
            id = await CreateAsync(api.Client, 10);
        }
        Directory.Delete(Path.Combine(data, "blobs", "loras", id, "photos"), recursive: true);

        await using var worker = await LikenessServer.StartAsync(dataFolder: data);
        var (lora, _) = await worker.WaitForLoraAsync(id, l => l.GetProperty("status").GetString() is "READY" or "FAILED");
        Assert.Equal("FAILED", lora.GetProperty("status").GetString());
        Assert.Equal("dataset_failed", lora.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(before, await worker.CreditsAsync());
        Directory.Delete(data, recursive: true);
    }

    [Fact]
    public async Task A_generation_whose_adapter_was_purged_fails_with_a_full_refund_and_a_busy_idempotency_key_is_409()
    {
        var (data, loraId) = await ReadyLoraAsync(20);

        string generationId;
        long before;
        await using (var api = await LikenessServer.StartAsync(Api(("Likeness:Generation:SyncWait", "00:00:03")), data))
        {
            before = await api.CreditsAsync();
            HttpRequestMessage Request()
            {
                var r = new HttpRequestMessage(HttpMethod.Post, "/v2/images/generate")
                {
                    Content = JsonContent.Create(new { model = "flux-lora", prompt = "x", fluxLoraParams = new { loraId, num_outputs = 3, num_inference_steps = 4 } }),
                };
                r.Headers.Add("Idempotency-Key", "gen-1");
                return r;
            }
            // No worker runs here: the first call waits out its 3 s; the same key meanwhile is still in progress.
            var first = api.Client.SendAsync(Request());
            await Task.Delay(1000);
            await Problem.AssertAsync(await api.Client.SendAsync(Request()), 409, "idempotency_in_progress");
            var accepted = await first;
            Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
            generationId = (await accepted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
            Assert.Equal(before - 6, await api.CreditsAsync());
            Assert.Equal(HttpStatusCode.OK, (await api.Client.DeleteAsync($"/v2/loras/{loraId}?purge=true")).StatusCode);
        }

        await using var worker = await LikenessServer.StartAsync(dataFolder: data);
        JsonElement generation;
        var deadline = DateTime.UtcNow.AddMinutes(1);
        do
        {
            await Task.Delay(100);
            generation = await worker.GetJsonAsync($"/v2/images/{generationId}");
        } while (generation.GetProperty("status").GetString() is "PENDING" or "RUNNING" && DateTime.UtcNow < deadline);
        Assert.Equal("FAILED", generation.GetProperty("status").GetString());
        Assert.Equal("generation_failed", generation.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(0, generation.GetProperty("creditsCharged").GetInt64());
        Assert.Equal(before, await worker.CreditsAsync());
        Directory.Delete(data, recursive: true);
    }

    [Fact]
    public async Task A_lost_response_never_makes_a_second_generation_for_the_same_idempotency_key()
    {
        var (data, loraId) = await ReadyLoraAsync(30);

        // No worker runs here: generations stay PENDING, so a synchronous call waits.
        await using var api = await LikenessServer.StartAsync(Api(("Likeness:Generation:SyncWait", "00:00:30")), data);
        var before = await api.CreditsAsync();
        var body = GenerateBody(loraId);
        HttpRequestMessage Request(string? key, bool respondAsync = false) => GenerateMessage(body, key, respondAsync);
        Task<int> Generations() => api.WithDb(db => db.Generations.CountAsync(g => g.LoraId == loraId));

        // 1. The client hangs up while the synchronous call waits: the generation was made and charged, the response lost.
        await HangUpAsync(api, Request("hang-up"));
        var retry = await api.Client.SendAsync(Request("hang-up"));
        Assert.Equal(HttpStatusCode.Accepted, retry.StatusCode);
        Assert.Equal("true", retry.Headers.GetValues("Idempotent-Replayed").Single());
        Assert.Equal(1, await Generations());
        Assert.Equal(before - 4, await api.CreditsAsync());
        var first = await IdOf(retry);
        Assert.Equal(first, await api.WithDb(db => db.Generations.Where(g => g.LoraId == loraId).Select(g => g.Id).SingleAsync()));

        // 2. The process died between its commit and its answer: the key's row names the generation, with no response.
        var made = await api.Client.SendAsync(Request(null, respondAsync: true));
        var second = await IdOf(made);
        var teamId = (await api.GetJsonAsync("/v2/team")).GetProperty("id").GetString()!;
        await api.WithDb(async db =>
        {
            var now = DateTime.UtcNow;
            db.IdempotencyRecords.Add(new IdempotencyRecord
            {
                TeamId = teamId, Key = "crashed", Endpoint = "POST /v2/images/generate",
                Fingerprint = Idempotency.Fingerprint("POST /v2/images/generate", [body]),
                ResourceId = second, CreatedAt = now.AddMinutes(-11), ExpiresAt = now.AddHours(13),
            });
            return await db.SaveChangesAsync();
        });
        var recovered = await api.Client.SendAsync(Request("crashed"));
        Assert.Equal(HttpStatusCode.Accepted, recovered.StatusCode);
        Assert.Equal(second, await IdOf(recovered));
        Assert.Equal(2, await Generations());
        Assert.Equal(before - 8, await api.CreditsAsync());
        Directory.Delete(data, recursive: true);
    }

    [Fact]
    public async Task A_replayed_synchronous_generate_whose_client_hung_up_answers_200_with_the_images_once_finished()
    {
        var (data, loraId) = await ReadyLoraAsync(40);
        var body = GenerateBody(loraId);
        long before;
        string generationId;
        // No worker runs here: the client hangs up while the generation is still PENDING, and a replay answers 202.
        await using (var api = await LikenessServer.StartAsync(Api(("Likeness:Generation:SyncWait", "00:00:30")), data))
        {
            before = await api.CreditsAsync();
            await HangUpAsync(api, GenerateMessage(body, "dropped"));
            var pending = await api.Client.SendAsync(GenerateMessage(body, "dropped"));
            Assert.Equal(HttpStatusCode.Accepted, pending.StatusCode);
            generationId = await IdOf(pending);
        }

        await using var worker = await LikenessServer.StartAsync(dataFolder: data);
        var deadline = DateTime.UtcNow.AddMinutes(1);
        while ((await worker.GetJsonAsync($"/v2/images/{generationId}")).GetProperty("status").GetString() is "PENDING" or "RUNNING" && DateTime.UtcNow < deadline)
            await Task.Delay(100);

        foreach (var _ in new[] { "replayed", "replayed again, from the stored answer" })
        {
            var replay = await worker.Client.SendAsync(GenerateMessage(body, "dropped"));
            Assert.Equal(HttpStatusCode.OK, replay.StatusCode);
            Assert.Equal("true", replay.Headers.GetValues("Idempotent-Replayed").Single());
            var generation = await replay.Content.ReadFromJsonAsync<JsonElement>();
            Assert.Equal(generationId, generation.GetProperty("id").GetString());
            Assert.Equal("COMPLETED", generation.GetProperty("status").GetString());
            Assert.Equal(2, generation.GetProperty("images").GetArrayLength());
        }
        Assert.Equal(1, await worker.WithDb(db => db.Generations.CountAsync(g => g.LoraId == loraId)));
        Assert.Equal(before - 4, await worker.CreditsAsync());
        Directory.Delete(data, recursive: true);
    }

    private static string GenerateBody(string loraId) =>
        $$$"""{"model":"flux-lora","prompt":"x","fluxLoraParams":{"loraId":"{{{loraId}}}","num_outputs":2,"num_inference_steps":4}}""";

    private static HttpRequestMessage GenerateMessage(string body, string? key, bool respondAsync = false)
    {
        var r = new HttpRequestMessage(HttpMethod.Post, "/v2/images/generate") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        if (key is not null) r.Headers.Add("Idempotency-Key", key);
        if (respondAsync) r.Headers.Add("Prefer", "respond-async");
        return r;
    }

    private static async Task<string> IdOf(HttpResponseMessage r) => (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;

    /// <summary>Sends a synchronous generate and hangs up after a second; returns once the server has settled the key.</summary>
    private static async Task HangUpAsync(LikenessServer api, HttpRequestMessage request)
    {
        var key = request.Headers.GetValues("Idempotency-Key").Single();
        using (var hangUp = new CancellationTokenSource(TimeSpan.FromSeconds(1)))
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => api.Client.SendAsync(request, hangUp.Token));
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (!await api.WithDb(db => db.IdempotencyRecords.AnyAsync(r => r.Key == key && r.Completed)) && DateTime.UtcNow < deadline)
            await Task.Delay(100);
    }
}
