using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Likeness.Tests.Infrastructure;

namespace Likeness.Tests;

/// <summary>What is derived from a subject's photos goes: all of it at purge, the dataset at cancel.</summary>
[Collection(ProcessTests.Name)]
public sealed class PurgeTests
{
    [Fact]
    public async Task Purge_leaves_no_file_of_the_subject_in_the_data_folder()
    {
        await using var server = await LikenessServer.StartAsync();
        var created = await server.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, 700)));
        Assert.Equal(HttpStatusCode.Accepted, created.StatusCode);
        var loraId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        var (ready, _) = await server.WaitForLoraAsync(loraId, l => l.GetProperty("status").GetString() is "READY" or "FAILED");
        Assert.Equal("READY", ready.GetProperty("status").GetString());
        var generated = await server.Client.PostAsJsonAsync("/v2/images/generate",
            new { model = "flux-lora", prompt = "x", fluxLoraParams = new { loraId, num_inference_steps = 4 } });
        Assert.Equal(HttpStatusCode.OK, generated.StatusCode);
        var generationId = (await generated.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        Assert.NotEmpty(FilesOf(server, loraId, generationId)); // photos, dataset, adapter, cached adapter, image

        Assert.Equal(HttpStatusCode.OK, (await server.Client.DeleteAsync($"/v2/loras/{loraId}?purge=true")).StatusCode);

        Assert.Empty(FilesOf(server, loraId, generationId));
        // Beyond the names: no file of any kind is left in the blob store or the work folder.
        foreach (var folder in new[] { "blobs", "work" })
        {
            var path = Path.Combine(server.DataFolder, folder);
            Assert.True(!Directory.Exists(path) || !Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories).Any(),
                string.Join(", ", Directory.Exists(path) ? Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories) : []));
        }
    }

    [Fact]
    public async Task Cancel_during_training_removes_the_dataset()
    {
        await using var server = await LikenessServer.StartAsync();
        var created = await server.Client.PostAsync("/v2/loras",
            LoraForms.Create(TestImages.Pngs(15, 710), new Dictionary<string, string> { ["steps"] = "3000" }));
        var loraId = (await created.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        await server.WaitForLoraAsync(loraId, l => l.GetProperty("status").GetString() == "TRAINING" &&
            l.GetProperty("progress").GetProperty("step").GetInt32() >= 2);
        Assert.Equal(HttpStatusCode.OK, (await server.Client.PostAsync($"/v2/loras/{loraId}/cancel", null)).StatusCode);

        // The trainer stops at its next heartbeat; whatever it wrote meanwhile goes with it.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (FilesOf(server, loraId).Any(f => !f.Contains("photos")) && DateTime.UtcNow < deadline) await Task.Delay(200);
        Assert.DoesNotContain(FilesOf(server, loraId), f => !f.Contains("photos"));
        Assert.NotEmpty(FilesOf(server, loraId)); // the uploaded photos stay until a purge
    }

    /// <summary>Every file under the data folder whose path names one of <paramref name="ids"/>.</summary>
    private static List<string> FilesOf(LikenessServer server, params string[] ids) =>
        Directory.EnumerateFiles(server.DataFolder, "*", SearchOption.AllDirectories)
            .Where(f => ids.Any(f.Contains)).ToList();
}
