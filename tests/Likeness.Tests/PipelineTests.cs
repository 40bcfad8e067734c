using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Likeness.Tests.Infrastructure;

namespace Likeness.Tests;

/// <summary>The vertical slice a new user walks through: upload → caption → train → READY → generate, on the real engine.</summary>
public sealed class PipelineTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private LikenessServer Server => fixture.Server;

    [Fact]
    public async Task Trains_a_lora_to_ready_and_generates_images_with_exact_credits()
    {
        var before = await Server.CreditsAsync();
        var response = await Server.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15)));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var created = await response.Content.ReadFromJsonAsync<JsonElement>();
        var id = created.GetProperty("id").GetString()!;
        Assert.Matches("^lora_[0-9a-hjkmnp-tv-z]{26}$", id);
        Assert.Equal("PENDING", created.GetProperty("status").GetString());
        Assert.Equal(15, created.GetProperty("imageCount").GetInt32());
        var firstCharge = (await Server.GetJsonAsync("/v2/team/ledger?limit=1")).GetProperty("items")[0];
        if (firstCharge.GetProperty("reason").GetString() == "lora_create") // the worker may already have charged training
            Assert.Equal(-2, firstCharge.GetProperty("amount").GetInt64());

        var (lora, seen) = await Server.WaitForLoraAsync(id, l => l.GetProperty("status").GetString() is "READY" or "FAILED");
        Assert.Equal("READY", lora.GetProperty("status").GetString());
        Assert.Contains("TRAINING", seen);
        Assert.True(lora.GetProperty("isReady").GetBoolean());
        Assert.True(lora.GetProperty("hasWeights").GetBoolean());
        var trigger = lora.GetProperty("triggerWord").GetString()!;
        Assert.Matches("^[A-Z]{5}$", trigger);
        Assert.Equal(LikenessServer.TestMinSteps, lora.GetProperty("progress").GetProperty("step").GetInt32());
        foreach (var field in new[] { "createdAt", "startedAt", "trainingStartedAt", "completedAt" })
            Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", lora.GetProperty(field).GetString()!);
        Assert.Equal(before - 257, await Server.CreditsAsync());

        var weights = await Server.Client.GetAsync($"/v2/loras/{id}/weights");
        Assert.Equal(HttpStatusCode.OK, weights.StatusCode);
        var bytes = await weights.Content.ReadAsByteArrayAsync();
        var headerLength = BitConverter.ToInt64(bytes, 0);
        var header = System.Text.Encoding.UTF8.GetString(bytes, 8, (int)headerLength);
        Assert.Contains(trigger, header);
        Assert.Contains("lora_A.weight", header);
        foreach (var (format, marker) in new[] { ("peft", "transformer.transformer_blocks.0.attn.to_q.lora_A.weight"), ("kohya", "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight") })
        {
            var converted = await Server.Client.GetByteArrayAsync($"/v2/loras/{id}/weights?format={format}");
            Assert.Contains(marker, System.Text.Encoding.UTF8.GetString(converted, 8, (int)BitConverter.ToInt64(converted, 0)));
        }
        // The conversions' scratch folders (in staging, where the sweeper would find them after a crash) go with their responses.
        var staging = Path.Combine(Server.DataFolder, "staging");
        await DataFolders.WaitUntilAsync(() => DataFolders.Files(staging).Count == 0, TimeSpan.FromSeconds(10),
            () => "left in staging: " + string.Join(", ", DataFolders.Files(staging)));
        await Problem.AssertAsync(await Server.Client.GetAsync($"/v2/loras/{id}/weights?format=ckpt"), 400, "validation_failed");

        var generate = await Server.Client.PostAsJsonAsync("/v2/images/generate", new
        {
            model = "flux-lora",
            prompt = "a portrait in soft window light",
            fluxLoraParams = new { loraId = id, num_outputs = 2, num_inference_steps = 4, seed = 42 },
        });
        var generation = await generate.Content.ReadFromJsonAsync<JsonElement>();
        Assert.True(generate.StatusCode == HttpStatusCode.OK, generation.ToString());
        Assert.Equal("COMPLETED", generation.GetProperty("status").GetString());
        Assert.Equal($"{trigger} a portrait in soft window light", generation.GetProperty("prompt").GetString());
        Assert.Equal(4, generation.GetProperty("creditsCharged").GetInt64());
        var images = generation.GetProperty("images").EnumerateArray().ToList();
        Assert.Equal(2, images.Count);
        Assert.Equal(42, images[0].GetProperty("seed").GetInt64());
        Assert.Equal(43, images[1].GetProperty("seed").GetInt64());
        Assert.Equal(before - 261, await Server.CreditsAsync());

        using var anonymous = new HttpClient();
        var pngs = new List<byte[]>();
        foreach (var image in images)
        {
            var url = image.GetProperty("url").GetString()!;
            Assert.StartsWith(Server.BaseAddress.ToString().TrimEnd('/') + "/v2/files/", url);
            var file = await anonymous.GetAsync(url);
            Assert.Equal(HttpStatusCode.OK, file.StatusCode);
            Assert.Equal("image/png", file.Content.Headers.ContentType?.MediaType);
            var png = await file.Content.ReadAsByteArrayAsync();
            Assert.Equal(new byte[] { 0x89, 0x50, 0x4E, 0x47 }, png[..4]);
            using var decoded = SkiaSharp.SKBitmap.Decode(png);
            Assert.Equal(image.GetProperty("width").GetInt32(), decoded.Width);
            Assert.Equal(image.GetProperty("height").GetInt32(), decoded.Height);
            pngs.Add(png);
        }
        Assert.NotEqual(pngs[0], pngs[1]); // different seeds, different images

        // Same inputs ⇒ same images; a prompt that already holds the trigger word is kept as-is.
        var again = await Server.Client.PostAsJsonAsync("/v2/images/generate", new
        {
            model = "flux-lora",
            prompt = $"a portrait of {trigger.ToLowerInvariant()}, soft light",
            fluxLoraParams = new { loraId = id, num_outputs = 1, num_inference_steps = 4, seed = 42 },
        });
        var againJson = await again.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal($"a portrait of {trigger.ToLowerInvariant()}, soft light", againJson.GetProperty("prompt").GetString());

        var repeat = await Server.Client.PostAsJsonAsync("/v2/images/generate", new
        {
            model = "flux-lora",
            prompt = "a portrait in soft window light",
            fluxLoraParams = new { loraId = id, num_outputs = 1, num_inference_steps = 4, seed = 42 },
        });
        var repeatJson = await repeat.Content.ReadFromJsonAsync<JsonElement>();
        var repeatPng = await anonymous.GetByteArrayAsync(repeatJson.GetProperty("images")[0].GetProperty("url").GetString());
        Assert.Equal(pngs[0], repeatPng);
    }

    [Fact]
    public async Task Respond_async_answers_202_with_a_location_and_the_generation_completes()
    {
        var id = await TrainAsync();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v2/images/generate")
        {
            Content = JsonContent.Create(new
            {
                model = "flux-lora", prompt = "studio photo",
                fluxLoraParams = new { loraId = id, num_inference_steps = 4, output_format = "webp", aspect_ratio = "16:9" },
            }),
        };
        request.Headers.Add("Prefer", "respond-async");
        var response = await Server.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.Equal("respond-async", response.Headers.GetValues("Preference-Applied").Single());
        var location = response.Headers.Location!.ToString();
        var generationId = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        Assert.Equal($"/v2/images/{generationId}", location);

        JsonElement generation;
        do
        {
            await Task.Delay(100);
            generation = await Server.GetJsonAsync(location);
        } while (generation.GetProperty("status").GetString() is "PENDING" or "RUNNING");
        Assert.Equal("COMPLETED", generation.GetProperty("status").GetString());
        var image = generation.GetProperty("images")[0];
        Assert.Equal("image/webp", image.GetProperty("contentType").GetString());
        Assert.True(image.GetProperty("width").GetInt32() > image.GetProperty("height").GetInt32());
        Assert.Equal(0, image.GetProperty("width").GetInt32() % 16);
        Assert.True(generation.GetProperty("params").GetProperty("seed").GetInt64() >= 0); // chosen and returned
    }

    private async Task<string> TrainAsync()
    {
        var response = await Server.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, seed: 100)));
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        var (lora, _) = await Server.WaitForLoraAsync(id, l => l.GetProperty("status").GetString() is "READY" or "FAILED");
        Assert.Equal("READY", lora.GetProperty("status").GetString());
        return id;
    }
}
