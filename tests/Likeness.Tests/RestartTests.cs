using System.Net.Http.Json;
using System.Text.Json;
using Likeness.Tests.Infrastructure;

namespace Likeness.Tests;

/// <summary>The real executable, killed mid-training and started again: the job is taken over and the ledger stays exact.</summary>
[Collection(ProcessTests.Name)]
public sealed class RestartTests
{
    [Fact]
    public async Task A_training_whose_process_was_killed_is_resumed_after_restart_with_an_exact_ledger()
    {
        var data = LikenessServer.NewDataFolder();
        var url = $"http://127.0.0.1:{LikenessServer.FreePort()}";
        string[] args = ["serve", "--data", data, "--urls", url, "--allow-private-webhooks"];
        try
        {
            using var client = new HttpClient { BaseAddress = new Uri(url) };
            string id;
            long before;
            using (var first = LikenessProcess.Start(args))
            {
                await first.WaitForHealthAsync(client);
                client.DefaultRequestHeaders.Add("X-API-Key", (await File.ReadAllTextAsync(Path.Combine(data, "default-api-key"))).Trim());
                before = (await client.GetFromJsonAsync<JsonElement>("/v2/team")).GetProperty("credits").GetInt64();
                var created = await client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, 900), new Dictionary<string, string> { ["steps"] = "120" }));
                id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;

                // Kill it once training has made some progress (and so written a checkpoint).
                var deadline = DateTime.UtcNow.AddMinutes(2);
                while (true)
                {
                    var lora = await client.GetFromJsonAsync<JsonElement>($"/v2/loras/{id}");
                    if (lora.GetProperty("status").GetString() == "TRAINING" && lora.GetProperty("progress").GetProperty("step").GetInt32() >= 6) break;
                    Assert.NotEqual("READY", lora.GetProperty("status").GetString());
                    Assert.True(DateTime.UtcNow < deadline, "training never made progress");
                    await Task.Delay(50);
                }
                first.Kill();
            }

            using var second = LikenessProcess.Start(args);
            await second.WaitForHealthAsync(client);
            var final = await WaitForTerminalAsync(client, id, TimeSpan.FromMinutes(5));
            Assert.Equal("READY", final.GetProperty("status").GetString());
            Assert.Equal(before - 257, (await client.GetFromJsonAsync<JsonElement>("/v2/team")).GetProperty("credits").GetInt64());
            var ledger = await client.GetFromJsonAsync<JsonElement>("/v2/team/ledger?limit=100");
            var mine = ledger.GetProperty("items").EnumerateArray().Where(e => e.GetProperty("loraId").GetString() == id).ToList();
            Assert.Equal(["lora_training", "lora_create"], mine.Select(e => e.GetProperty("reason").GetString()!).ToArray());
        }
        finally
        {
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }
    }

    internal static async Task<JsonElement> WaitForTerminalAsync(HttpClient client, string id, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var lora = await client.GetFromJsonAsync<JsonElement>($"/v2/loras/{id}");
            if (lora.GetProperty("status").GetString() is "READY" or "FAILED") return lora;
            Assert.True(DateTime.UtcNow < deadline, $"{id} stayed {lora.GetProperty("status").GetString()}");
            await Task.Delay(100);
        }
    }
}
