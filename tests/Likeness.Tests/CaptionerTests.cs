using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Likeness.Hosting;
using Likeness.Tests.Infrastructure;
using Microsoft.Extensions.Options;
using Xunit.Abstractions;
using Reply = Likeness.Tests.Infrastructure.ChatEndpoint.Reply;

namespace Likeness.Tests;

/// <summary>
/// <c>--captioner openai</c> against a real OpenAI-compatible server on loopback: captions land in the dataset, the
/// endpoint's failures are retried as a good client would, and an endpoint that stays down fails the LoRA cleanly.
/// </summary>
[Collection(ProcessTests.Name)]
public sealed class CaptionerTests(ITestOutputHelper output)
{
    /// <summary>Caption and webhook workers only: these tests look at the dataset, not at a training.</summary>
    private static Dictionary<string, string?> OpenAi(string endpoint, params (string, string)[] extra)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Likeness:Queues"] = "caption,webhook",
            ["Likeness:Captioner"] = "openai",
            ["Likeness:CaptionerEndpoint"] = endpoint,
            ["Likeness:CaptionerModel"] = "test-vision",
            ["Likeness:CaptionerCalls:RetryDelay"] = "00:00:00.050",
            ["Likeness:CaptionerCalls:Timeout"] = "00:00:05",
        };
        foreach (var (k, v) in extra) settings[k] = v;
        return settings;
    }

    private static async Task<string> CreateAsync(LikenessServer server, int seed)
    {
        var response = await server.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, seed)));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    /// <summary>Polls the captions endpoint until the dataset is stored; 409 lora_not_ready until then.</summary>
    private static async Task<List<JsonElement>> CaptionsAsync(LikenessServer server, string id)
    {
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (true)
        {
            var response = await server.Client.GetAsync($"/v2/loras/{id}/captions");
            if (response.IsSuccessStatusCode)
                return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("items").EnumerateArray().ToList();
            await Problem.AssertAsync(response, 409, "lora_not_ready");
            var lora = await server.GetJsonAsync($"/v2/loras/{id}");
            Assert.NotEqual("FAILED", lora.GetProperty("status").GetString());
            Assert.True(DateTime.UtcNow < deadline, $"the dataset of {id} never appeared: {lora}");
            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task Captions_from_the_endpoint_land_in_the_dataset_with_the_trigger_word_source_and_size()
    {
        await using var endpoint = await ChatEndpoint.StartAsync();
        await using var server = await LikenessServer.StartAsync(OpenAi(endpoint.BaseUrl));
        var response = await server.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, 1000),
            new Dictionary<string, string> { ["subjectKind"] = "person", ["gender"] = "female", ["ethnicity"] = "East Asian", ["age"] = "34" }));
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;

        var items = await CaptionsAsync(server, id);
        Assert.Equal(15, items.Count);
        Assert.Equal(Enumerable.Range(1, 15).Select(i => $"{i:000}.jpg"), items.Select(i => i.GetProperty("image").GetString()));
        var trigger = await server.WithDb(db => Task.FromResult(db.Loras.Single(l => l.Id == id).TriggerWord));
        Assert.All(items, item =>
        {
            Assert.Equal("openai", item.GetProperty("source").GetString());
            Assert.StartsWith($"a photo of {trigger} woman, A head-and-shoulders shot of a ceramic mug", item.GetProperty("caption").GetString());
            Assert.True(item.GetProperty("width").GetInt32() > 0 && item.GetProperty("height").GetInt32() > 0);
            Assert.True(item.GetProperty("bytes").GetInt64() > 0);
        });
        Assert.Equal(15, items.Select(i => i.GetProperty("caption").GetString()).Distinct().Count());

        // What the model was sent: the model's name, the instructions, the subject as context, the photo as a JPEG data URI.
        Assert.Equal(15, endpoint.Calls.Count);
        var call = endpoint.Calls.First().Body;
        Assert.Equal("test-vision", call.GetProperty("model").GetString());
        var text = call.GetProperty("messages").GetRawText();
        Assert.Contains("Do not name anyone", text);
        Assert.Contains("a female person, East Asian ethnicity, age 34", text);
        Assert.Contains("data:image/jpeg;base64,/9j/", text);

        // Another team sees nothing.
        var (_, otherKey) = await server.WithDb(db => Core.Teams.TeamAdmin.CreateTeamAsync(db, "other", 100, 10, TimeProvider.System, default));
        await Problem.AssertAsync(await server.CreateClient(otherKey).GetAsync($"/v2/loras/{id}/captions"), 404, "not_found");
        await Problem.AssertAsync(await server.Client.GetAsync("/v2/loras/nope/captions"), 400, "invalid_id");
    }

    [Fact]
    public async Task Fifteen_photos_are_captioned_several_at_a_time_with_their_progress_on_the_lora()
    {
        await using var endpoint = await ChatEndpoint.StartAsync();
        endpoint.Latency = TimeSpan.FromMilliseconds(200);
        await using var server = await LikenessServer.StartAsync(OpenAi(endpoint.BaseUrl));
        var id = await CreateAsync(server, 1100);

        var (uploading, _) = await server.WaitForLoraAsync(id, l => l.GetProperty("progress").ValueKind == JsonValueKind.Object);
        Assert.Equal("UPLOADING", uploading.GetProperty("status").GetString());
        Assert.Equal("captioning", uploading.GetProperty("progress").GetProperty("phase").GetString());
        Assert.Equal(15, uploading.GetProperty("progress").GetProperty("totalSteps").GetInt32());
        var (done, _) = await server.WaitForLoraAsync(id, l => l.GetProperty("progress").GetProperty("step").GetInt32() == 15);
        Assert.Equal("UPLOADING", done.GetProperty("status").GetString());
        await CaptionsAsync(server, id);
        var stored = DateTime.UtcNow;

        // The worker taking the LoRA up → the dataset stored (normalising, captioning, zipping, storing; ±50 ms of polling),
        // and the first call sent → the last answer received (the captioning alone).
        var started = await server.WithDb(db => Task.FromResult(db.Loras.Single(l => l.Id == id).StartedAt!.Value));
        var calls = endpoint.Calls.Select(c => c.ReceivedAt).Order().ToList();
        var captioning = (calls[^1] - calls[0]).TotalSeconds + 0.2;
        output.WriteLine($"15 photos, endpoint answering in 200 ms, {endpoint.MostAtOnce} at once: captioning {captioning:F2} s, " +
                         $"UPLOADING start to dataset stored {(stored - started).TotalSeconds:F2} s (one at a time: 3.0 s of waiting alone)");
        Assert.Equal(4, endpoint.MostAtOnce);
        // One at a time would take 15 × 200 ms = 3 s of waiting alone.
        Assert.True(captioning < 3.0, $"captioning took {captioning:F2} s");
    }

    [Fact]
    public async Task A_429_with_Retry_After_is_waited_out_then_the_call_is_repeated()
    {
        await using var endpoint = await ChatEndpoint.StartAsync();
        endpoint.Script(new Reply(429, RetryAfterSeconds: 1));
        await using var server = await LikenessServer.StartAsync(OpenAi(endpoint.BaseUrl, ("Likeness:CaptionerConcurrency", "1")));
        var id = await CreateAsync(server, 1200);

        var items = await CaptionsAsync(server, id);
        Assert.All(items, i => Assert.Equal("openai", i.GetProperty("source").GetString()));
        var calls = endpoint.Calls.ToList();
        Assert.Equal(16, calls.Count);
        // The retry waited for Retry-After (1 s), not for the 50 ms the backoff alone would have.
        Assert.True(calls[1].ReceivedAt - calls[0].ReceivedAt >= TimeSpan.FromMilliseconds(950), $"retried after {(calls[1].ReceivedAt - calls[0].ReceivedAt).TotalMilliseconds} ms");
    }

    [Fact]
    public async Task Server_errors_timeouts_empty_answers_and_refusals_are_asked_again()
    {
        await using var endpoint = await ChatEndpoint.StartAsync();
        endpoint.Script(new Reply(500), new Reply(503), new Reply(Content: "late", Delay: TimeSpan.FromSeconds(3)), new Reply(502),
            new Reply(Content: ""), new Reply(Content: "I'm sorry, but I can't help with identifying people in images."));
        await using var server = await LikenessServer.StartAsync(OpenAi(endpoint.BaseUrl,
            ("Likeness:CaptionerConcurrency", "1"), ("Likeness:CaptionerCalls:Timeout", "00:00:01")));
        var id = await CreateAsync(server, 1300);

        var items = await CaptionsAsync(server, id);
        Assert.Equal(15, items.Count);
        Assert.All(items, i =>
        {
            Assert.Equal("openai", i.GetProperty("source").GetString());
            Assert.Contains("ceramic mug", i.GetProperty("caption").GetString());
        });
        // 15 good answers, and each scripted failure cost one more call, all inside the job's first attempt.
        Assert.Equal(21, endpoint.Calls.Count);
        Assert.Equal(1, await server.WithDb(db => Task.FromResult(db.Jobs.Single(j => j.SubjectId == id && j.Queue == "caption").Attempts)));
        var lora = await server.GetJsonAsync($"/v2/loras/{id}");
        Assert.Equal("UPLOADING", lora.GetProperty("status").GetString());
    }

    [Fact]
    public async Task An_endpoint_that_stays_down_fails_the_lora_with_dataset_failed_and_refunds_the_upload_fee()
    {
        var down = $"http://127.0.0.1:{LikenessServer.FreePort()}/v1";
        await using var server = await LikenessServer.StartAsync(OpenAi(down, ("Likeness:CaptionerCalls:Retries", "1")));
        var before = await server.CreditsAsync();
        var id = await CreateAsync(server, 1400);

        var (lora, _) = await server.WaitForLoraAsync(id, l => l.GetProperty("status").GetString() is "FAILED" or "READY");
        Assert.Equal("FAILED", lora.GetProperty("status").GetString());
        Assert.Equal("dataset_failed", lora.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("Preparing the dataset failed: The captioning endpoint could not be reached, after its retries.",
            lora.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal(before, await server.CreditsAsync());
        var ledger = (await server.GetJsonAsync("/v2/team/ledger")).GetProperty("items").EnumerateArray()
            .Where(e => e.GetProperty("loraId").GetString() == id)
            .Select(e => (e.GetProperty("reason").GetString(), e.GetProperty("amount").GetInt64())).ToList();
        Assert.Equal([("refund", 2L), ("lora_create", -2L)], ledger);
        await Problem.AssertAsync(await server.Client.GetAsync($"/v2/loras/{id}/captions"), 404, "not_found");
    }

    [Fact]
    public async Task With_fallback_local_a_photo_the_endpoint_cannot_caption_is_captioned_locally_and_the_lora_trains()
    {
        await using var endpoint = await ChatEndpoint.StartAsync();
        endpoint.Script(new Reply(503), new Reply(503));
        var settings = OpenAi(endpoint.BaseUrl, ("Likeness:CaptionerConcurrency", "1"), ("Likeness:CaptionerCalls:Retries", "1"),
            ("Likeness:CaptionerFallback", "local"));
        settings.Remove("Likeness:Queues");
        await using var server = await LikenessServer.StartAsync(settings);
        var id = await CreateAsync(server, 1500);

        var (lora, _) = await server.WaitForLoraAsync(id, l => l.GetProperty("status").GetString() is "FAILED" or "READY");
        Assert.Equal("READY", lora.GetProperty("status").GetString());
        var items = await CaptionsAsync(server, id);
        var trigger = lora.GetProperty("triggerWord").GetString();
        Assert.Equal("local", items[0].GetProperty("source").GetString());
        // The local captioner's words: what it measured, or the plain backdrop and the subject's place.
        Assert.Matches($"^a photo of (a (small|mid-sized|big) )?{trigger} object(, .* orientation, | on a .* background, (in|on|at) the )",
            items[0].GetProperty("caption").GetString());
        Assert.All(items.Skip(1), i => Assert.Equal("openai", i.GetProperty("source").GetString()));
    }

    [Fact]
    public async Task The_api_key_reaches_the_endpoint_and_never_the_log()
    {
        const string key = "sk-test-9f8e7d6c5b4a3210";
        await using var endpoint = await ChatEndpoint.StartAsync();
        endpoint.Script(new Reply(429, RetryAfterSeconds: 0), new Reply(500), new Reply(Content: ""));
        var data = LikenessServer.NewDataFolder();
        var url = $"http://127.0.0.1:{LikenessServer.FreePort()}";
        using var process = LikenessProcess.Start(
            new Dictionary<string, string?> { ["LIKENESS_CAPTIONER_API_KEY"] = key, ["Logging__LogLevel__Default"] = "Trace" },
            "serve", "--data", data, "--urls", url, "--queues", "caption,webhook",
            "--captioner", "openai", "--captioner-endpoint", endpoint.BaseUrl, "--captioner-model", "test-vision");
        try
        {
            using var client = new HttpClient { BaseAddress = new Uri(url) };
            await process.WaitForHealthAsync(client);
            client.DefaultRequestHeaders.Add("X-API-Key", (await File.ReadAllTextAsync(Path.Combine(data, "default-api-key"))).Trim());
            var created = await client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, 1600)));
            var id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
            var deadline = DateTime.UtcNow.AddMinutes(2);
            while (!(await client.GetAsync($"/v2/loras/{id}/captions")).IsSuccessStatusCode)
            {
                Assert.True(DateTime.UtcNow < deadline, "no dataset: " + process.Output);
                await Task.Delay(100);
            }
            Assert.All(endpoint.Calls, c => Assert.Equal("Bearer " + key, c.Authorization));
            Assert.Contains("captioning model", process.Output); // the unusable answer was logged, so the log was captured
            Assert.DoesNotContain(key, process.Output);
            Assert.DoesNotContain(key[3..], process.Output);
        }
        finally
        {
            process.Kill();
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }
    }

    [Theory]
    [InlineData("openai", null, null, "--captioner openai needs --captioner-endpoint (LIKENESS_CAPTIONER_ENDPOINT, the base URL ending in /v1) and --captioner-model (LIKENESS_CAPTIONER_MODEL).")]
    [InlineData("openai", "http://127.0.0.1:11434/v1", null, "--captioner openai needs --captioner-model (LIKENESS_CAPTIONER_MODEL).")]
    [InlineData("openai", "localhost:11434", "llava", "--captioner-endpoint 'localhost:11434' is not an absolute http(s) URL such as http://127.0.0.1:11434/v1.")]
    [InlineData("florence3", null, null, "Unknown --captioner 'florence3': use local (the default), openai or florence2.")]
    public void A_captioner_setting_it_cannot_run_with_stops_the_start_with_one_line(string captioner, string? endpoint, string? model, string expected)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Likeness:Data"] = Directory.CreateTempSubdirectory().FullName, ["Likeness:Captioner"] = captioner,
            ["Likeness:CaptionerEndpoint"] = endpoint, ["Likeness:CaptionerModel"] = model,
        };
        var error = Assert.Throws<OptionsValidationException>(() => LikenessHost.BuildWorker(settings));
        Assert.Equal(expected, Assert.Single(error.Failures));
    }

    [Fact]
    public async Task The_process_prints_the_captioner_error_as_one_line_and_exits_2()
    {
        using var process = LikenessProcess.Start(new Dictionary<string, string?> { ["LIKENESS_CAPTIONER"] = "openai", ["LIKENESS_CAPTIONER_MODEL"] = "llava" },
            "worker", "--data", LikenessServer.NewDataFolder());
        var exited = await process.WaitForExitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(2, exited);
        Assert.Equal("likeness: --captioner openai needs --captioner-endpoint (LIKENESS_CAPTIONER_ENDPOINT, the base URL ending in /v1).", process.Output.Trim());
    }
}
