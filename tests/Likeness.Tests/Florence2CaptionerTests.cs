using System.IO.Compression;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Likeness.Engine.Captioning;
using Likeness.Hosting;
using Likeness.Tests.Infrastructure;
using Microsoft.Extensions.Options;

namespace Likeness.Tests;

/// <summary>
/// <c>--captioner florence2</c> through the real host, with the engine tests' tiny random Florence-2 and its synthetic
/// tokenizer as the model folder: the captions it writes are nonsense words, but they are Florence-2's own, produced
/// in-process, checked and composed with the trigger word like any captioner's.
/// </summary>
[Collection(ProcessTests.Name)]
public sealed class Florence2CaptionerTests
{
    private static readonly string TinyFolder = Path.Combine(AppContext.BaseDirectory, "Data", "florence2-tiny");

    [Fact]
    public async Task Florence2_captions_every_photo_in_process_and_the_trigger_word_is_composed_by_code()
    {
        await using var server = await LikenessServer.StartAsync(new Dictionary<string, string?>
        {
            ["Likeness:Queues"] = "caption,webhook",
            ["Likeness:Captioner"] = "florence2",
            ["Likeness:CaptionerModels"] = TinyFolder,
            ["Likeness:CaptionerConcurrency"] = "2",
        });
        var response = await server.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, 2600),
            new Dictionary<string, string> { ["subjectKind"] = "person", ["gender"] = "female", ["ethnicity"] = "Mixed", ["age"] = "40" }));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;

        List<JsonElement> items;
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (true)
        {
            var list = await server.Client.GetAsync($"/v2/loras/{id}/captions");
            if (list.IsSuccessStatusCode) { items = (await list.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("items").EnumerateArray().ToList(); break; }
            var lora = await server.GetJsonAsync($"/v2/loras/{id}");
            Assert.NotEqual("FAILED", lora.GetProperty("status").GetString());
            Assert.True(DateTime.UtcNow < deadline, $"the dataset never appeared: {lora}");
            await Task.Delay(100);
        }
        var trigger = await server.WithDb(db => Task.FromResult(db.Loras.Single(l => l.Id == id).TriggerWord));
        Assert.Equal(15, items.Count);
        Assert.All(items, item => Assert.Equal("florence2", item.GetProperty("source").GetString()));

        // Each stored caption is the engine's caption of the stored (normalised) photo, after the lead the code writes.
        var zipPath = Directory.EnumerateFiles(Path.Combine(server.DataFolder, "blobs"), "dataset.zip", SearchOption.AllDirectories).Single(p => p.Contains(id));
        using var zip = ZipFile.OpenRead(zipPath);
        using var engine = Florence2Captioning.Load(TinyFolder);
        var lead = $"a photo of {trigger} woman, ";
        foreach (var item in items)
        {
            var caption = item.GetProperty("caption").GetString()!;
            var name = item.GetProperty("image").GetString()!;
            using var photo = new MemoryStream();
            using (var s = zip.GetEntry(name)!.Open()) s.CopyTo(photo);
            Assert.Equal(lead + engine.Caption(photo.ToArray()), caption);
            using var text = new StreamReader(zip.GetEntry(Path.ChangeExtension(name, ".txt"))!.Open());
            Assert.Equal(caption, text.ReadToEnd().Trim());
        }
        Assert.True(items.Select(i => i.GetProperty("caption").GetString()).Distinct().Count() > 1, "every photo got the same caption");
        using var manifest = JsonDocument.Parse(new StreamReader(zip.GetEntry("manifest.json")!.Open()).ReadToEnd());
        Assert.All(manifest.RootElement.GetProperty("items").EnumerateArray(), i => Assert.Equal("florence2", i.GetProperty("source").GetString()));
    }

    [Fact]
    public void A_florence2_setting_it_cannot_run_with_stops_the_start_with_one_line()
    {
        string Error(string? models)
        {
            var settings = new Dictionary<string, string?>
            {
                ["Likeness:Data"] = Directory.CreateTempSubdirectory().FullName, ["Likeness:Captioner"] = "florence2", ["Likeness:CaptionerModels"] = models,
            };
            return Assert.Single(Assert.Throws<OptionsValidationException>(() => LikenessHost.BuildWorker(settings)).Failures);
        }

        Assert.Equal("--captioner florence2 needs --captioner-models (LIKENESS_CAPTIONER_MODELS), a Florence-2 model folder such as huggingface-cli download microsoft/Florence-2-base --local-dir DIR makes.", Error(null));
        var empty = Directory.CreateTempSubdirectory().FullName;
        Assert.Equal($"The Florence-2 model folder {empty} is incomplete: missing config.json, model.safetensors (or pytorch_model.bin), vocab.json + merges.txt (or tokenizer.json).", Error(empty));
        Assert.Equal($"The Florence-2 model folder {empty}/nope does not exist.", Error(Path.Combine(empty, "nope")));
        File.Copy(Path.Combine(TinyFolder, "config.json"), Path.Combine(empty, "config.json"));
        File.Copy(Path.Combine(TinyFolder, "model.safetensors"), Path.Combine(empty, "model.safetensors"));
        Assert.EndsWith("missing vocab.json + merges.txt (or tokenizer.json).", Error(empty));
        // Complete: the host builds (the model itself loads on the first photo).
        var settings = new Dictionary<string, string?>
        {
            ["Likeness:Data"] = Directory.CreateTempSubdirectory().FullName, ["Likeness:Captioner"] = "florence2", ["Likeness:CaptionerModels"] = TinyFolder,
        };
        using var host = LikenessHost.BuildWorker(settings);
    }

    [Fact]
    public async Task The_engine_caption_verb_prints_each_photo_s_caption_and_time()
    {
        var photo = Path.Combine(Directory.CreateTempSubdirectory().FullName, "photo.png");
        File.WriteAllBytes(photo, TestImages.Png(7));
        var lines = await LikenessProcess.RunAsync(new Dictionary<string, string?>(), "engine", "caption", "--captioner-models", TinyFolder, "--threads", "1", photo);
        using var engine = Florence2Captioning.Load(TinyFolder);
        var expected = engine.Caption(File.ReadAllBytes(photo));
        Assert.Contains(lines, l => l.StartsWith($"loaded {TinyFolder} in ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("photo.png (", StringComparison.Ordinal) && l.EndsWith($" s): {expected}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_captioner_models_flag_and_environment_variable_reach_the_settings()
    {
        using var process = LikenessProcess.Start(new Dictionary<string, string?> { ["LIKENESS_CAPTIONER"] = "florence2", ["LIKENESS_CAPTIONER_MODELS"] = "/nonexistent/florence" },
            "worker", "--data", LikenessServer.NewDataFolder());
        Assert.Equal(2, await process.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Equal("likeness: The Florence-2 model folder /nonexistent/florence does not exist.", process.Output.Trim());

        using var flagged = LikenessProcess.Start(new Dictionary<string, string?> { ["LIKENESS_CAPTIONER"] = "florence2" },
            "worker", "--data", LikenessServer.NewDataFolder(), "--captioner-models", "/elsewhere/florence");
        Assert.Equal(2, await flagged.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Equal("likeness: The Florence-2 model folder /elsewhere/florence does not exist.", flagged.Output.Trim());
    }
}
