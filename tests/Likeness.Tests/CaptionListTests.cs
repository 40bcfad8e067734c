using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Likeness.Tests.Infrastructure;

namespace Likeness.Tests;

/// <summary>GET /v2/loras/{id}/captions with the default (local) captioner: 409 until the dataset is stored, then every photo.</summary>
[Collection(ProcessTests.Name)]
public sealed class CaptionListTests
{
    [Fact]
    public async Task Captions_are_refused_while_pending_then_listed_with_source_local_and_size()
    {
        var data = LikenessServer.NewDataFolder();
        string id;
        await using (var api = await LikenessServer.StartAsync(new Dictionary<string, string?> { ["Likeness:Role"] = "api" }, data))
        {
            var created = await api.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, 1700)));
            Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
            id = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
            // No worker here: it stays PENDING, with no progress yet.
            await Problem.AssertAsync(await api.Client.GetAsync($"/v2/loras/{id}/captions"), 409, "lora_not_ready");
            Assert.Equal(JsonValueKind.Null, (await api.GetJsonAsync($"/v2/loras/{id}")).GetProperty("progress").ValueKind);
        }

        await using var worker = await LikenessServer.StartAsync(new Dictionary<string, string?> { ["Likeness:Queues"] = "caption,webhook" }, data);
        var (uploading, _) = await worker.WaitForLoraAsync(id, l => l.GetProperty("progress").ValueKind == JsonValueKind.Object &&
            l.GetProperty("progress").GetProperty("step").GetInt32() == 15);
        Assert.Equal("captioning", uploading.GetProperty("progress").GetProperty("phase").GetString());
        JsonElement list;
        var deadline = DateTime.UtcNow.AddMinutes(1);
        while (true)
        {
            var response = await worker.Client.GetAsync($"/v2/loras/{id}/captions");
            if (response.IsSuccessStatusCode) { list = await response.Content.ReadFromJsonAsync<JsonElement>(); break; }
            Assert.True(DateTime.UtcNow < deadline, "the dataset never appeared");
            await Task.Delay(50);
        }
        var items = list.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(15, items.Count);
        Assert.Equal(JsonValueKind.Null, list.GetProperty("nextCursor").ValueKind);
        Assert.All(items, i =>
        {
            Assert.Equal("local", i.GetProperty("source").GetString());
            // The local captioner's words: what it measured, or the plain backdrop and the subject's place.
            Assert.Matches(" orientation, | background, (in|on|at) the ", i.GetProperty("caption").GetString());
            Assert.Equal((96, 128), (i.GetProperty("width").GetInt32(), i.GetProperty("height").GetInt32()));
            Assert.True(i.GetProperty("bytes").GetInt64() > 100);
        });

        // The OpenAPI document carries the response's schema.
        var openApi = await worker.GetJsonAsync("/openapi/v1.json");
        var get = openApi.GetProperty("paths").GetProperty("/v2/loras/{id}/captions").GetProperty("get");
        Assert.True(get.GetProperty("responses").GetProperty("200").TryGetProperty("content", out _));
        Assert.True(openApi.GetProperty("components").GetProperty("schemas").TryGetProperty("CaptionResponse", out _));
        Directory.Delete(data, recursive: true);
    }
}
