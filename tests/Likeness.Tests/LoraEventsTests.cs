using System.Net.Http.Json;
using System.Text.Json;
using Likeness.Core.Teams;
using Likeness.Tests.Infrastructure;

namespace Likeness.Tests;

/// <summary><c>GET /v2/loras/{id}/events</c> read over real HTTP the way any client reads Server-Sent Events.</summary>
public sealed class LoraEventsTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private LikenessServer Server => fixture.Server;

    // Long enough for several of the trainer's progress writes (one a second): 20 steps could finish inside one on a
    // quiet machine, and the stream would rightly show only the start and the end.
    private const int Steps = 150;

    [Fact]
    public async Task Streams_the_training_progress_and_ends_after_READY()
    {
        var id = await CreateLoraAsync(Server.Client, new Dictionary<string, string> { ["steps"] = Steps.ToString(), ["loraRank"] = "8" });

        using var response = await Server.Client.GetAsync($"/v2/loras/{id}/events", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("no-cache", response.Headers.CacheControl?.ToString());
        var events = await ReadToEndAsync(response, TimeSpan.FromMinutes(3));

        var loras = events.Where(e => e.Name == "lora").Select(e => JsonDocument.Parse(e.Data).RootElement).ToList();
        Assert.All(loras, l => Assert.Equal(id, l.GetProperty("id").GetString()));
        Assert.Equal(Enumerable.Range(1, loras.Count).Select(i => i.ToString()), events.Where(e => e.Name == "lora").Select(e => e.Id));
        var training = loras.Where(l => l.GetProperty("status").GetString() == "TRAINING" && l.GetProperty("progress").ValueKind == JsonValueKind.Object).ToList();
        Assert.NotEmpty(training);
        Assert.Contains(training, l => l.GetProperty("progress").GetProperty("step").GetInt32() < Steps);
        Assert.True(training.Select(l => l.GetProperty("progress").GetProperty("step").GetInt32()).Distinct().Count() > 1,
            "the stream should carry the training's progress step by step, not only its start and end");
        var last = loras[^1];
        Assert.Equal("READY", last.GetProperty("status").GetString());
        Assert.Equal(Steps, last.GetProperty("progress").GetProperty("step").GetInt32());
        // The same object GET returns.
        var get = await Server.GetJsonAsync($"/v2/loras/{id}");
        Assert.Equal(get.GetProperty("triggerWord").GetString(), last.GetProperty("triggerWord").GetString());
        Assert.Equal(get.GetProperty("completedAt").GetString(), last.GetProperty("completedAt").GetString());
    }

    [Fact]
    public async Task Refuses_another_teams_lora_a_missing_key_and_a_malformed_id()
    {
        var (_, otherKey) = await Server.WithDb(db => TeamAdmin.CreateTeamAsync(db, "events-" + Guid.NewGuid().ToString("N")[..8], 1000, 10, TimeProvider.System, default));
        using var other = Server.CreateClient(otherKey);
        var id = await CreateLoraAsync(other, new Dictionary<string, string> { ["steps"] = "3000" });
        try
        {
            await Problem.AssertAsync(await Server.Client.GetAsync($"/v2/loras/{id}/events"), 404, "not_found");
            using var anonymous = Server.CreateClient(null);
            var unauthorized = await anonymous.GetAsync($"/v2/loras/{id}/events");
            await Problem.AssertAsync(unauthorized, 401, "unauthorized");
            await Problem.AssertAsync(await Server.Client.GetAsync("/v2/loras/not-an-id/events"), 400, "invalid_id");
        }
        finally
        {
            (await other.PostAsync($"/v2/loras/{id}/cancel", null)).EnsureSuccessStatusCode();
        }
    }

    [Fact]
    public async Task Sends_heartbeats_while_nothing_changes_and_ends_when_the_lora_is_cancelled()
    {
        // No workers: the LoRA stays PENDING until it is cancelled.
        await using var api = await LikenessServer.StartAsync(new Dictionary<string, string?>
        {
            ["Likeness:Role"] = "api", ["Likeness:Events:HeartbeatInterval"] = "00:00:00.300",
        });
        var id = await CreateLoraAsync(api.Client);
        using var response = await api.Client.GetAsync($"/v2/loras/{id}/events", HttpCompletionOption.ResponseHeadersRead);
        var twoHeartbeats = new TaskCompletionSource();
        var heartbeats = 0;
        var reading = ReadToEndAsync(response, TimeSpan.FromSeconds(30), e =>
        {
            if (e.Name == "heartbeat" && ++heartbeats == 2) twoHeartbeats.SetResult();
        });
        await Task.WhenAny(twoHeartbeats.Task, reading);
        if (!twoHeartbeats.Task.IsCompleted) Assert.Fail($"the stream ended before two heartbeats: {string.Join(" | ", await reading)}");
        (await api.Client.PostAsync($"/v2/loras/{id}/cancel", null)).EnsureSuccessStatusCode();
        var events = await reading;

        Assert.Equal("lora", events[0].Name);
        Assert.Equal("PENDING", JsonDocument.Parse(events[0].Data).RootElement.GetProperty("status").GetString());
        Assert.All(events.Where(e => e.Name == "heartbeat"), e => Assert.Equal("heartbeat", e.Data));
        var last = JsonDocument.Parse(events[^1].Data).RootElement;
        Assert.Equal("FAILED", last.GetProperty("status").GetString());
        Assert.Equal("canceled", last.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task Is_described_in_the_openapi_document_as_an_event_stream()
    {
        using var anonymous = Server.CreateClient(null);
        var openapi = JsonDocument.Parse(await anonymous.GetStringAsync("/openapi/v1.json")).RootElement;
        var get = openapi.GetProperty("paths").GetProperty("/v2/loras/{id}/events").GetProperty("get");
        Assert.True(get.GetProperty("responses").GetProperty("200").GetProperty("content").TryGetProperty("text/event-stream", out _));
        Assert.True(get.GetProperty("responses").TryGetProperty("404", out _));
    }

    private static async Task<string> CreateLoraAsync(HttpClient client, Dictionary<string, string>? fields = null)
    {
        var created = await client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15), fields));
        Assert.True(created.IsSuccessStatusCode, await created.Content.ReadAsStringAsync());
        return (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    /// <summary>One event of the stream; a comment line is reported as the event <c>heartbeat</c>.</summary>
    private sealed record ServerSentEvent(string? Id, string Name, string Data);

    /// <summary>Reads events until the server ends the stream (a timeout fails the test), telling <paramref name="seen"/> of each.</summary>
    private static async Task<List<ServerSentEvent>> ReadToEndAsync(HttpResponseMessage response, TimeSpan timeout, Action<ServerSentEvent>? seen = null)
    {
        using var cts = new CancellationTokenSource(timeout);
        await using var stream = await response.Content.ReadAsStreamAsync(cts.Token);
        using var reader = new StreamReader(stream);
        var events = new List<ServerSentEvent>();
        string? id = null, name = null;
        var data = new List<string>();
        while (await reader.ReadLineAsync(cts.Token) is { } line)
        {
            if (line.Length == 0)
            {
                if (data.Count > 0) Add(new ServerSentEvent(id, name ?? "message", string.Join('\n', data)));
                id = name = null;
                data.Clear();
            }
            else if (line.StartsWith(':')) Add(new ServerSentEvent(null, "heartbeat", line[1..].Trim()));
            else if (line.StartsWith("id: ")) id = line[4..];
            else if (line.StartsWith("event: ")) name = line[7..];
            else if (line.StartsWith("data: ")) data.Add(line[6..]);
        }
        return events;

        void Add(ServerSentEvent e)
        {
            events.Add(e);
            seen?.Invoke(e);
        }
    }
}
