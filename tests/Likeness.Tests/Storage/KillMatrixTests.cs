using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Likeness.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using SkiaSharp;
using Xunit.Abstractions;

namespace Likeness.Tests.Storage;

/// <summary>
/// The fault matrix of issue #11: the real executable killed with SIGKILL in each state, then started again on the same
/// data. Afterwards every LoRA and generation has reached a terminal state (or resumed to one), the balance is the sum
/// of the ledger and each LoRA's and generation's charges net of refunds are what its outcome costs, and no file is left
/// that no row references.
/// </summary>
[Collection(ProcessTests.Name)]
public sealed class KillMatrixTests(ITestOutputHelper output)
{
    // The states of the issue's matrix. Where one process can be caught in two of them at once, one kill covers both:
    // every restart costs a lease's wait and a training, and the whole matrix must stay within a few minutes.
    public const string PendingWhilePhotosAreStored = "PENDING, and while another upload's photos are being stored";
    public const string UploadingWhileTrainingBegins = "UPLOADING, and TRAINING at its first step";
    public const string TrainingAfterCheckpoints = "TRAINING, after checkpoints";
    public const string GeneratingWhileDeliveringWebhook = "during a generation and a webhook delivery";

    public static TheoryData<string> States =>
        [PendingWhilePhotosAreStored, UploadingWhileTrainingBegins, TrainingAfterCheckpoints, GeneratingWhileDeliveringWebhook];

    /// <summary>Fast leases (a killed process's jobs are taken over soon) and a sweeper that runs every second.</summary>
    private static readonly Dictionary<string, string?> Fast = new()
    {
        ["Likeness__Workers__Lease"] = "00:00:05",
        ["Likeness__Sweeper__Interval"] = "00:00:01",
        ["Likeness__Sweeper__Grace"] = "00:00:01",
    };

    [Theory]
    [MemberData(nameof(States))]
    public async Task Killed_in_any_state_and_restarted_everything_settles_with_an_exact_ledger_and_no_orphan(string state)
    {
        var data = LikenessServer.NewDataFolder();
        Directory.CreateDirectory(data);
        var url = $"http://127.0.0.1:{LikenessServer.FreePort()}";
        await using var chat = await ChatEndpoint.StartAsync();
        await using var hook = await StallingHook.StartAsync();
        var environment = new Dictionary<string, string?>(Fast);
        if (state == UploadingWhileTrainingBegins)
        {
            // A slow hosted captioner keeps a LoRA in UPLOADING long enough to be killed there.
            environment["Likeness__Captioner"] = "openai";
            environment["Likeness__CaptionerEndpoint"] = chat.BaseUrl;
            environment["Likeness__CaptionerModel"] = "test-vision";
            environment["Likeness__CaptionerConcurrency"] = "1";
            chat.Latency = TimeSpan.FromMilliseconds(250);
        }
        var started = DateTime.UtcNow;
        try
        {
            using var client = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromMinutes(2) };
            var generations = new List<string>();
            string[] serve = ["serve", "--data", data, "--urls", url, "--allow-private-webhooks"];
            // PENDING holds only where no worker takes the LoRA up: the first process serves the API alone.
            var apiOnly = state is PendingWhilePhotosAreStored;
            using (var first = LikenessProcess.Start(environment, apiOnly ? [.. serve, "--role", "api"] : serve))
            {
                await first.WaitForHealthAsync(client);
                client.DefaultRequestHeaders.Add("X-API-Key", (await File.ReadAllTextAsync(Path.Combine(data, "default-api-key"))).Trim());
                await DriveToAsync(state, client, first, data, hook, chat, generations);
                first.Kill(); // SIGKILL: Process.Kill sends it on Unix
            }
            chat.Latency = TimeSpan.Zero;
            hook.Stall = false;
            output.WriteLine($"{state}: killed after {(DateTime.UtcNow - started).TotalSeconds:0.0} s");

            using var second = LikenessProcess.Start(environment, serve);
            await second.WaitForHealthAsync(client);
            await AssertSettledAsync(client, data, generations);
            if (state == GeneratingWhileDeliveringWebhook)
            {
                // At least once: the delivery the kill cut off is made again, under the same webhook-id, and recorded.
                var loraId = (await client.GetFromJsonAsync<JsonElement>("/v2/loras")).GetProperty("items")[0].GetProperty("id").GetString();
                var deadline = DateTime.UtcNow.AddMinutes(1);
                while (!(await client.GetFromJsonAsync<JsonElement>($"/v2/loras/{loraId}/webhook-deliveries")).GetProperty("items")
                           .EnumerateArray().Any(a => a.GetProperty("succeeded").GetBoolean()))
                {
                    Assert.True(DateTime.UtcNow < deadline, "the webhook was never delivered after the restart");
                    await Task.Delay(100);
                }
                Assert.Single((await hook.WaitForAsync(2)).Select(d => d.WebhookId).Distinct());
            }
            output.WriteLine($"{state}: settled after {(DateTime.UtcNow - started).TotalSeconds:0.0} s");
        }
        finally
        {
            try { Directory.Delete(data, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Brings the first process to <paramref name="state"/>; it is killed as soon as this returns.</summary>
    private static async Task DriveToAsync(string state, HttpClient client, LikenessProcess process, string data,
        StallingHook hook, ChatEndpoint chat, List<string> generations)
    {
        switch (state)
        {
            case PendingWhilePhotosAreStored:
            {
                await CreateAsync(client, steps: 4, seed: 1400);
                // Then photos that do not compress, so that copying them into the blob store takes a while; the process
                // dies as soon as the first of them appears there.
                var photos = Enumerable.Range(0, 15).Select(i => NoiseJpeg(1520 + i, 900)).ToList();
                var blobs = Path.Combine(data, "blobs");
                var before = Directory.EnumerateFiles(blobs, "*", SearchOption.AllDirectories).Count();
                var post = client.PostAsync("/v2/loras", LoraForms.Create(photos, extension: "jpg"));
                var deadline = DateTime.UtcNow.AddMinutes(1);
                while (Directory.EnumerateFiles(blobs, "*", SearchOption.AllDirectories).Count() == before)
                {
                    Assert.True(DateTime.UtcNow < deadline, "no photo was ever stored");
                    Assert.False(post.IsCompleted, "the upload finished before it could be interrupted: " +
                        (post.IsCompletedSuccessfully ? post.Result.StatusCode : post.Exception));
                    Thread.Sleep(1);
                }
                process.Kill();
                await Assert.ThrowsAnyAsync<Exception>(() => post);
                return;
            }
            case UploadingWhileTrainingBegins:
            {
                // One job per queue at a time: the second LoRA is captioned while the first begins to train.
                var training = await CreateAsync(client, steps: 6, seed: 1420);
                var uploading = await CreateAsync(client, steps: 4, seed: 1440);
                await PollAsync(client, training, l => Status(l) == "TRAINING");
                await PollAsync(client, uploading, l => Status(l) == "UPLOADING" && chat.Calls.Count >= 17);
                return;
            }
            case TrainingAfterCheckpoints:
            {
                // Progress is written once a second: enough steps that a fast machine is still training when it shows.
                var id = await CreateAsync(client, steps: 24, seed: 1460);
                await PollAsync(client, id, l => Status(l) == "TRAINING" && l.GetProperty("progress").GetProperty("step").GetInt32() >= 3);
                return;
            }
            case GeneratingWhileDeliveringWebhook:
            {
                var id = await CreateAsync(client, steps: 4, seed: 1480, webhookUrl: hook.Url);
                await PollAsync(client, id, l => Status(l) == "READY");
                await hook.WaitForAsync(1); // the completed event is in flight: the receiver holds it open
                using var request = new HttpRequestMessage(HttpMethod.Post, "/v2/images/generate")
                {
                    Content = JsonContent.Create(new
                    {
                        model = "flux-lora", prompt = "a mug on a desk",
                        fluxLoraParams = new { loraId = id, num_outputs = 2, num_inference_steps = 4, seed = 7 },
                    }),
                };
                request.Headers.Add("Prefer", "respond-async");
                var accepted = await client.SendAsync(request);
                Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
                var generationId = (await accepted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
                generations.Add(generationId);
                // Killed with one image made and stored, and the next one on its way.
                var deadline = DateTime.UtcNow.AddMinutes(2);
                while ((await client.GetFromJsonAsync<JsonElement>($"/v2/images/{generationId}")).GetProperty("images").GetArrayLength() < 1)
                {
                    Assert.True(DateTime.UtcNow < deadline, "the generation never made an image");
                    await Task.Delay(10);
                }
                return;
            }
            default: throw new ArgumentOutOfRangeException(nameof(state), state, null);
        }
    }

    /// <summary>The invariants after the restart, waited for while the pipeline and the sweeper finish.</summary>
    private static async Task AssertSettledAsync(HttpClient client, string data, List<string> generationIds)
    {
        var loras = (await client.GetFromJsonAsync<JsonElement>("/v2/loras?limit=100&includeArchived=true")).GetProperty("items")
            .EnumerateArray().Select(l => l.GetProperty("id").GetString()!).ToList();
        var final = new List<JsonElement>();
        foreach (var id in loras) final.Add(await RestartTests.WaitForTerminalAsync(client, id, TimeSpan.FromMinutes(3)));
        var images = new List<(string Id, JsonElement Generation)>();
        foreach (var id in generationIds) images.Add((id, await WaitForGenerationAsync(client, id)));

        var credits = (await client.GetFromJsonAsync<JsonElement>("/v2/team")).GetProperty("credits").GetInt64();
        var ledger = (await client.GetFromJsonAsync<JsonElement>("/v2/team/ledger?limit=100")).GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(credits, ledger.Sum(e => e.GetProperty("amount").GetInt64()));
        foreach (var lora in final)
        {
            var id = lora.GetProperty("id").GetString();
            var net = ledger.Where(e => e.GetProperty("loraId").GetString() == id).Sum(e => e.GetProperty("amount").GetInt64());
            Assert.Equal(Status(lora) == "READY" ? -257 : 0, net);
        }
        foreach (var (id, generation) in images)
        {
            var made = generation.GetProperty("images").GetArrayLength();
            var net = ledger.Where(e => e.GetProperty("generationId").GetString() == id).Sum(e => e.GetProperty("amount").GetInt64());
            Assert.Equal(-2L * made, net);
            Assert.Equal(2L * made, generation.GetProperty("creditsCharged").GetInt64());
        }

        // What may remain: each LoRA's photos, a READY one's dataset and adapter, each generation's recorded images,
        // cached adapters of LoRAs that exist. Nothing in staging, no LoRA work folder (none is active any more).
        var expected = new List<string>();
        var photoCounts = new Dictionary<string, int>();
        foreach (var lora in final)
        {
            var id = lora.GetProperty("id").GetString()!;
            photoCounts[$"loras/{id}/photos/"] = lora.GetProperty("imageCount").GetInt32();
            if (Status(lora) == "READY") expected.AddRange([$"loras/{id}/dataset.zip", $"loras/{id}/adapter.safetensors"]);
        }
        foreach (var (_, generation) in images)
        {
            expected.AddRange(generation.GetProperty("images").EnumerateArray()
                .Select(i => new Uri(i.GetProperty("url").GetString()!).AbsolutePath["/v2/files/".Length..]));
        }
        expected.Sort(StringComparer.Ordinal);
        var cached = loras.Select(id => Path.Combine("adapters", id + ".safetensors")).ToHashSet();
        bool BlobsAsExpected()
        {
            var blobs = DataFolders.Files(Path.Combine(data, "blobs")).Select(f => f.Replace(Path.DirectorySeparatorChar, '/')).ToList();
            var photos = blobs.Where(b => b.Contains("/photos/")).ToList();
            return photoCounts.Sum(p => p.Value) == photos.Count &&
                   photoCounts.All(p => photos.Count(b => b.StartsWith(p.Key, StringComparison.Ordinal)) == p.Value) &&
                   blobs.Except(photos).Order(StringComparer.Ordinal).SequenceEqual(expected);
        }
        await DataFolders.WaitUntilAsync(() =>
                BlobsAsExpected() &&
                DataFolders.Files(Path.Combine(data, "staging")).Count == 0 &&
                DataFolders.Files(Path.Combine(data, "work")).All(cached.Contains),
            TimeSpan.FromSeconds(20),
            () => $"expected each LoRA's photos and {string.Join(", ", expected)}; the data folder holds {string.Join(", ", DataFolders.Files(data))}");
    }

    private static async Task<JsonElement> WaitForGenerationAsync(HttpClient client, string id)
    {
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (true)
        {
            var g = await client.GetFromJsonAsync<JsonElement>($"/v2/images/{id}");
            if (Status(g) is "COMPLETED" or "FAILED") return g;
            Assert.True(DateTime.UtcNow < deadline, $"{id} stayed {Status(g)}");
            await Task.Delay(100);
        }
    }

    private static async Task<string> CreateAsync(HttpClient client, int steps, int seed, string? webhookUrl = null)
    {
        var fields = new Dictionary<string, string> { ["steps"] = steps.ToString() };
        if (webhookUrl is not null) fields["webhookUrl"] = webhookUrl;
        var created = await client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, seed), fields));
        Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
        return (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    private static async Task PollAsync(HttpClient client, string id, Func<JsonElement, bool> reached)
    {
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (true)
        {
            var lora = await client.GetFromJsonAsync<JsonElement>($"/v2/loras/{id}");
            if (reached(lora)) return;
            Assert.True(Status(lora) is not ("FAILED" or "READY") || reached(lora), $"{id} went past the state to kill in: {lora}");
            Assert.True(DateTime.UtcNow < deadline, $"{id} never reached the state to kill in: {lora}");
            await Task.Delay(20);
        }
    }

    private static string Status(JsonElement e) => e.GetProperty("status").GetString()!;

    private static byte[] NoiseJpeg(int seed, int side)
    {
        var pixels = new byte[side * side * 4];
        new Random(seed).NextBytes(pixels);
        for (var i = 3; i < pixels.Length; i += 4) pixels[i] = 255;
        using var bitmap = new SKBitmap(side, side);
        System.Runtime.InteropServices.Marshal.Copy(pixels, 0, bitmap.GetPixels(), pixels.Length);
        using var image = SKImage.FromBitmap(bitmap);
        using var encoded = image.Encode(SKEncodedImageFormat.Jpeg, 100);
        return encoded.ToArray();
    }

    /// <summary>A webhook receiver that, while <see cref="Stall"/> is set, holds every delivery open without answering.</summary>
    private sealed class StallingHook : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly List<(string WebhookId, DateTime At)> _received = [];

        private StallingHook(WebApplication app, string url)
        {
            _app = app;
            Url = url;
        }

        public string Url { get; }
        public volatile bool Stall = true;

        public static async Task<StallingHook> StartAsync()
        {
            StallingHook? hook = null;
            var (app, address) = await Loopback.StartAsync(a => a.MapPost("/hook", async (HttpContext http) =>
            {
                lock (hook!._received) hook._received.Add((http.Request.Headers["webhook-id"].ToString(), DateTime.UtcNow));
                if (hook.Stall)
                {
                    try { await Task.Delay(Timeout.Infinite, http.RequestAborted); }
                    catch (OperationCanceledException) { }
                    return Results.Empty;
                }
                return Results.Ok();
            }));
            hook = new StallingHook(app, address + "/hook");
            return hook;
        }

        public async Task<List<(string WebhookId, DateTime At)>> WaitForAsync(int count)
        {
            var deadline = DateTime.UtcNow.AddMinutes(2);
            while (true)
            {
                lock (_received) if (_received.Count >= count) return [.. _received];
                Assert.True(DateTime.UtcNow < deadline, $"expected {count} webhook deliveries");
                await Task.Delay(20);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
