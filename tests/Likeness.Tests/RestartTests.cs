using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using Likeness.Core.Data;
using Likeness.Tests.Infrastructure;
using Microsoft.Data.Sqlite;

namespace Likeness.Tests;

/// <summary>The real executable, killed mid-training and started again: the job is taken over and the ledger stays exact.</summary>
public sealed class RestartTests
{
    [Fact]
    public async Task A_training_whose_process_was_killed_is_resumed_after_restart_with_an_exact_ledger()
    {
        var data = Path.Combine(Path.GetTempPath(), "likeness-tests", Guid.NewGuid().ToString("N"));
        var url = $"http://127.0.0.1:{LikenessServer.FreePort()}";
        using var first = Start(data, url);
        try
        {
            var key = await WaitForKeyAsync(data, first);
            using var client = new HttpClient { BaseAddress = new Uri(url) };
            client.DefaultRequestHeaders.Add("X-API-Key", key);
            await WaitForHealthAsync(client, first);
            var before = (await client.GetFromJsonAsync<JsonElement>("/v2/team")).GetProperty("credits").GetInt64();

            var created = await client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, 900), new Dictionary<string, string> { ["steps"] = "120" }));
            var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;

            // Kill it once training has made some progress (and so written a checkpoint).
            var deadline = DateTime.UtcNow.AddMinutes(2);
            while (true)
            {
                var lora = await client.GetFromJsonAsync<JsonElement>($"/v2/loras/{id}");
                if (lora.GetProperty("status").GetString() == "TRAINING" &&
                    lora.GetProperty("progress").GetProperty("step").GetInt32() >= 6) break;
                Assert.NotEqual("READY", lora.GetProperty("status").GetString());
                Assert.True(DateTime.UtcNow < deadline, "training never made progress");
                await Task.Delay(50);
            }
            first.Kill(entireProcessTree: true);
            await first.WaitForExitAsync();

            using var second = Start(data, url);
            try
            {
                await WaitForHealthAsync(client, second);
                deadline = DateTime.UtcNow.AddMinutes(3);
                JsonElement final;
                while (true)
                {
                    final = await client.GetFromJsonAsync<JsonElement>($"/v2/loras/{id}");
                    if (final.GetProperty("status").GetString() is "READY" or "FAILED") break;
                    Assert.True(DateTime.UtcNow < deadline, "the killed training was never finished");
                    await Task.Delay(100);
                }
                Assert.Equal("READY", final.GetProperty("status").GetString());
                Assert.Equal(before - 257, (await client.GetFromJsonAsync<JsonElement>("/v2/team")).GetProperty("credits").GetInt64());

                var ledger = await client.GetFromJsonAsync<JsonElement>("/v2/team/ledger?limit=100");
                var mine = ledger.GetProperty("items").EnumerateArray().Where(e => e.GetProperty("loraId").GetString() == id).ToList();
                Assert.Equal(["lora_training", "lora_create"], mine.Select(e => e.GetProperty("reason").GetString()!).ToArray());
            }
            finally { Stop(second); }
        }
        finally
        {
            Stop(first);
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }
    }

    private static Process Start(string data, string url)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "likeness.dll");
        var info = new ProcessStartInfo("dotnet", ["exec", dll, "serve", "--data", data, "--urls", url, "--allow-private-webhooks"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.Environment["LIKENESS_TRAINING_MIN_STEPS"] = "4";
        info.Environment["Likeness__Training__CheckpointEvery"] = "2";
        info.Environment["Likeness__Workers__Lease"] = "00:00:03";
        info.Environment["Likeness__Workers__PollInterval"] = "00:00:00.200";
        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static async Task<string> WaitForKeyAsync(string data, Process process)
    {
        var path = Path.Combine(data, "default-api-key");
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!File.Exists(path) || (await File.ReadAllTextAsync(path)).Trim().Length == 0)
        {
            Assert.False(process.HasExited, "likeness serve exited");
            Assert.True(DateTime.UtcNow < deadline, "no default-api-key appeared");
            await Task.Delay(100);
        }
        return (await File.ReadAllTextAsync(path)).Trim();
    }

    private static async Task WaitForHealthAsync(HttpClient client, Process process)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            Assert.False(process.HasExited, "likeness serve exited");
            try { if ((await client.GetAsync("/health")).IsSuccessStatusCode) return; }
            catch (HttpRequestException) { }
            Assert.True(DateTime.UtcNow < deadline, "likeness serve never became healthy");
            await Task.Delay(100);
        }
    }

    private static void Stop(Process p)
    {
        try { if (!p.HasExited) p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
    }
}
