using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Likeness.Tests.Infrastructure;
using Microsoft.Extensions.Logging;

namespace Likeness.Tests;

/// <summary>An operator can follow a LoRA, its jobs and its generations in the log, by their ids.</summary>
[Collection(ProcessTests.Name)]
public sealed class LifecycleLogTests
{
    [Fact]
    public async Task Logs_each_lifecycle_event_with_its_ids_and_each_jobs_ids_as_a_scope()
    {
        var logs = new LogCapture();
        await using var server = await LikenessServer.StartAsync(
            new Dictionary<string, string?> { ["Logging:LogLevel:Likeness"] = "Information" },
            services: logs.AddTo);

        var ready = await CreateAsync(server, LikenessServer.TestMinSteps, 730);
        var (lora, _) = await server.WaitForLoraAsync(ready, l => l.GetProperty("status").GetString() is "READY" or "FAILED");
        Assert.Equal("READY", lora.GetProperty("status").GetString());
        var generate = await server.Client.PostAsJsonAsync("/v2/images/generate", new
        {
            model = "flux-lora", prompt = "a portrait",
            fluxLoraParams = new { loraId = ready, num_outputs = 1, num_inference_steps = 4, seed = 7 },
        });
        var generation = await generate.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(generate.StatusCode == HttpStatusCode.OK, generation.ToString());
        var generationId = generation.GetProperty("id").GetString()!;

        // A second LoRA cancelled while it trains: its training job ends failed (the subject no longer wants it).
        var cancelled = await CreateAsync(server, 3000, 760);
        await server.WaitForLoraAsync(cancelled, l => l.GetProperty("status").GetString() == "TRAINING");
        Assert.Equal(HttpStatusCode.OK, (await server.Client.PostAsync($"/v2/loras/{cancelled}/cancel", null)).StatusCode);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!logs.Entries.Any(e => Is(e, "JobFailed", "LoraId", cancelled)) && DateTime.UtcNow < deadline) await Task.Delay(100);

        var all = logs.Dump();
        var created = Single(logs, "LoraCreated", "LoraId", ready, all);
        Assert.Equal(LogLevel.Information, created.Level);
        Assert.Equal(15, created["ImageCount"]);
        Assert.False(string.IsNullOrEmpty(created["TeamId"] as string), all);

        // Every job of the READY LoRA: claimed and finished, both inside a scope that names the job and the LoRA.
        var claims = logs.Entries.Where(e => Is(e, "JobClaimed", "LoraId", ready)).ToList();
        Assert.Equal(["caption", "training"], claims.Select(c => (string)c["Queue"]!).Order());
        foreach (var claim in claims)
        {
            Assert.Equal(claim["JobId"], claim.ScopeProperties["JobId"]);
            Assert.Single(logs.Entries, e => Is(e, "JobFinished", "JobId", claim["JobId"]!) && Equals(e["LoraId"], ready));
        }
        var readyLine = Single(logs, "LoraReady", "LoraId", ready, all);
        Assert.True(readyLine.ScopeProperties.ContainsKey("JobId"), all);

        var done = Single(logs, "GenerationDone", "GenerationId", generationId, all);
        Assert.Equal((ready, "COMPLETED", 1), ((string)done["LoraId"]!, (string)done["Status"]!, (int)done["ImageCount"]!));
        Assert.Equal(generationId, done.ScopeProperties["GenerationId"]);

        var failed = Single(logs, "LoraFailed", "LoraId", cancelled, all);
        Assert.Equal("canceled", failed["ErrorCode"]);
        var jobFailed = Single(logs, "JobFailed", "LoraId", cancelled, all);
        Assert.Equal(LogLevel.Warning, jobFailed.Level);
        Assert.Equal("training", jobFailed["Queue"]);
    }

    private static async Task<string> CreateAsync(LikenessServer server, int steps, int seed)
    {
        var response = await server.Client.PostAsync("/v2/loras",
            LoraForms.Create(TestImages.Pngs(15, seed), new Dictionary<string, string> { ["steps"] = steps.ToString() }));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    private static bool Is(CapturedLog e, string eventName, string property, object value) =>
        e.EventId.Name == eventName && Equals(e[property], value);

    private static CapturedLog Single(LogCapture logs, string eventName, string property, object value, string all)
    {
        var matches = logs.Entries.Where(e => Is(e, eventName, property, value)).ToList();
        Assert.True(matches.Count == 1, $"expected one {eventName} with {property}={value}, got {matches.Count}:\n{all}");
        return matches[0];
    }
}
