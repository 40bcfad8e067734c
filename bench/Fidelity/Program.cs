// Subject fidelity through the service (issue #9): for each of N subjects the base model never saw (held-out emoji),
// compose 15 photos, train a LoRA through `likeness serve` with the API's defaults, generate in new settings
// (backgrounds, sizes and places none of its photos had), and attribute every generated image to the subject whose
// photos it resembles most in SceneFeatures' foreground-colour space. Also writes a montage for the README.
// Usage: dotnet run --project bench/Fidelity -c Release -- --likeness bench/out/likeness/likeness.dll --emoji data/emoji
//        [--subjects 4] [--out bench/out/fidelity] [--montage docs/fidelity.png] [--parallel 2 (services side by side)]
//        [--seeds 1 (images per prompt and LoRA; the first seed's alone are the 16-image figure, all of them a steadier one)]
//    or: dotnet run --project bench/Fidelity -c Release -- --quality --emoji data/emoji [--count 48]
//        (the shipped flux-tiny alone: autoencoder PSNR and prompt following, see Quality.cs)
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Likeness.Engine.Pretraining;
using SkiaSharp;

var options = args.Select((a, i) => (a, i)).Where(p => p.a.StartsWith("--", StringComparison.Ordinal))
    .ToDictionary(p => p.a[2..], p => p.i + 1 < args.Length ? args[p.i + 1] : "");
string Arg(string name, string fallback) => options.GetValueOrDefault(name, fallback);
if (options.ContainsKey("quality"))
{
    Quality.Run(EmojiCatalog.Load(Arg("emoji", "data/emoji")), int.Parse(Arg("count", "48")), Arg("out", "bench/out/quality"));
    return;
}
var likeness = Path.GetFullPath(Arg("likeness", "bench/out/likeness/likeness.dll"));
var catalog = EmojiCatalog.Load(Arg("emoji", "data/emoji"));
var subjectCount = int.Parse(Arg("subjects", "4"));
var seeds = int.Parse(Arg("seeds", "1"));
var outFolder = Path.GetFullPath(Arg("out", "bench/out/fidelity"));
var montagePath = options.ContainsKey("montage") ? Path.GetFullPath(options["montage"]) : null;
var parallel = int.Parse(Arg("parallel", "1"));
Directory.CreateDirectory(outFolder);

// Subjects: held-out objects without skin tones, chosen greedily to be far apart in the feature space (so that the
// measurement asks "is it this subject" rather than "is it red"), each with a clear foreground.
var candidates = catalog.HeldOut.Where(e => e.SkinTone is null && e.Category is not "Symbols")
    .Select(e => (Entry: e, Features: Quality.Render(e))).Where(c => c.Features.Sum() > 0.5).ToList();
var subjects = new List<(EmojiEntry Entry, double[] Features)> { candidates[0] };
while (subjects.Count < subjectCount)
    subjects.Add(candidates.Where(c => !subjects.Contains(c)).MaxBy(c => subjects.Min(s => 1 - SceneFeatures.Similarity(s.Features, c.Features))));
Console.WriteLine("subjects: " + string.Join(", ", subjects.Select(s => $"{s.Entry.Name} ({s.Entry.Code})")));

// Photos: the subject alone on backgrounds of six colours; generation asks for the other six.
string[] photoColours = ["red", "blue", "yellow", "gray", "white", "green"];
string[] newColours = ["purple", "teal", "pink", "orange", "black", "brown"];
var prompts = new[]
{
    (Text: "a photo of {0} object on a {1} background", Colour: newColours[0]),
    (Text: "a photo of a small {0} object on a {1} background, at the top left", Colour: newColours[1]),
    (Text: "a photo of a big {0} object on a {1} background, in the centre", Colour: newColours[2]),
    (Text: "a photo of {0} object on a {1} to white gradient", Colour: newColours[3]),
};

// --parallel N: N services (each trains one LoRA at a time, as a flux-tiny engine does), subjects dealt round-robin.
var servers = new List<(Process Process, HttpClient Http)>();
try
{
    for (var k = 0; k < parallel; k++)
    {
        var api = $"http://127.0.0.1:{18300 + (Environment.ProcessId + 7 * k) % 500}";
        var data = Path.Combine(outFolder, $"data{k}");
        if (Directory.Exists(data)) Directory.Delete(data, true);
        var server = Process.Start(new ProcessStartInfo("dotnet", [likeness, "serve", "--data", data, "--urls", api])
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        })!;
        server.OutputDataReceived += (_, _) => { };
        server.ErrorDataReceived += (_, _) => { };
        server.BeginOutputReadLine();
        server.BeginErrorReadLine();
        var client = new HttpClient { BaseAddress = new Uri(api), Timeout = TimeSpan.FromMinutes(5) };
        servers.Add((server, client));
        while (true)
        {
            try { if ((await client.GetAsync("/health")).IsSuccessStatusCode) break; } catch (HttpRequestException) { }
            await Task.Delay(200);
        }
        client.DefaultRequestHeaders.Add("X-API-Key", (await File.ReadAllTextAsync(Path.Combine(data, "default-api-key"))).Trim());
    }
    HttpClient Http(int subject) => servers[subject % servers.Count].Http;

    var photos = new List<List<SKBitmap>>();
    var submitted = new List<(string Id, Stopwatch Watch)>();
    for (var s = 0; s < subjects.Count; s++)
    {
        var composer = new SceneComposer([subjects[s].Entry], 512);
        var random = new Random(1000 + s);
        var mine = new List<SKBitmap>();
        using var form = new MultipartFormDataContent
        {
            { new StringContent($"fidelity {s}"), "name" },
            { new StringContent("object"), "subjectKind" },
        };
        for (var i = 0; i < 15; i++)
        {
            var bitmap = ComposePhoto(composer, random, photoColours[i % photoColours.Length]);
            mine.Add(bitmap);
            using var png = bitmap.Encode(SKEncodedImageFormat.Png, 100);
            var part = new ByteArrayContent(png.ToArray());
            part.Headers.ContentType = new MediaTypeHeaderValue("image/png");
            form.Add(part, "images", $"{i:D2}.png");
        }
        photos.Add(mine);
        // Each service trains one LoRA at a time: its next is submitted when the last is READY, so upload → READY
        // never includes a wait in the queue.
        if (s >= servers.Count) await WaitReady(s - servers.Count);
        var created = await (await Http(s).PostAsync("/v2/loras", form)).EnsureSuccessStatusCode().Content.ReadFromJsonAsync<JsonObject>();
        submitted.Add((created!["id"]!.GetValue<string>(), Stopwatch.StartNew()));
    }
    var loras = new List<(string Id, string Trigger, double Seconds)>();
    for (var s = 0; s < subjects.Count; s++) loras.Add(await WaitReady(s));

    async Task<(string Id, string Trigger, double Seconds)> WaitReady(int s)
    {
        var (id, watch) = submitted[s];
        JsonObject lora;
        while (true)
        {
            lora = (await Http(s).GetFromJsonAsync<JsonObject>($"/v2/loras/{id}"))!;
            var status = lora["status"]!.GetValue<string>();
            if (status is "READY" or "FAILED") break;
            await Task.Delay(500);
        }
        if (lora["status"]!.GetValue<string>() != "READY") throw new InvalidOperationException($"LoRA {id} failed: {lora.ToJsonString()}");
        if (watch.IsRunning)
        {
            watch.Stop();
            Console.WriteLine($"subject {s} ({subjects[s].Entry.Name}): LoRA {id} READY in {watch.Elapsed.TotalSeconds:F1} s");
        }
        return (id, lora["triggerWord"]!.GetValue<string>(), watch.Elapsed.TotalSeconds);
    }

    var prototypes = photos.Select(p => SceneFeatures.Mean(p.Select(SceneFeatures.Histogram))).ToList();
    var correct = 0;
    var correctFirst = 0;
    var total = 0;
    var generated = new List<List<SKBitmap>>();
    var confusion = new int[subjects.Count, subjects.Count];
    for (var s = 0; s < subjects.Count; s++)
    {
        var mine = new List<SKBitmap>();
        for (var p = 0; p < prompts.Length; p++)
        for (var k = 0; k < seeds; k++)
        {
            var prompt = string.Format(prompts[p].Text, loras[s].Trigger, prompts[p].Colour);
            var body = new JsonObject
            {
                ["model"] = "flux-lora", ["prompt"] = prompt,
                ["fluxLoraParams"] = new JsonObject { ["loraId"] = loras[s].Id, ["num_outputs"] = 1, ["seed"] = 7 + p + 100 * k },
            };
            var generation = await (await Http(s).PostAsJsonAsync("/v2/images/generate", body)).EnsureSuccessStatusCode().Content.ReadFromJsonAsync<JsonObject>();
            foreach (var image in generation!["images"]!.AsArray())
            {
                var bytes = await Http(s).GetByteArrayAsync(image!["url"]!.GetValue<string>());
                var bitmap = SKBitmap.Decode(bytes);
                await File.WriteAllBytesAsync(Path.Combine(outFolder, k == 0 ? $"subject{s}-prompt{p}.png" : $"subject{s}-prompt{p}-seed{k}.png"), bytes);
                if (k == 0) mine.Add(bitmap);
                var features = SceneFeatures.Histogram(bitmap);
                var attributed = Enumerable.Range(0, subjects.Count).MaxBy(c => SceneFeatures.Similarity(features, prototypes[c]));
                confusion[s, attributed]++;
                total++;
                if (attributed == s) correct++;
                if (k == 0 && attributed == s) correctFirst++;
            }
        }
        generated.Add(mine);
    }

    Console.WriteLine($"attributed to their own subject: {correctFirst} of {subjects.Count * prompts.Length} ({100.0 * correctFirst / (subjects.Count * prompts.Length):F0} %; chance {100.0 / subjects.Count:F0} %)");
    if (seeds > 1)
        Console.WriteLine($"over {seeds} seeds a prompt: {correct} of {total} ({100.0 * correct / total:F0} %)");
    Console.WriteLine("confusion (row: subject trained, column: subject attributed):");
    for (var s = 0; s < subjects.Count; s++)
        Console.WriteLine($"  {subjects[s].Entry.Name,-28} " + string.Join(" ", Enumerable.Range(0, subjects.Count).Select(k => confusion[s, k].ToString().PadLeft(2))));
    Console.WriteLine($"upload → READY: median {loras.Select(l => l.Seconds).Order().ElementAt(loras.Count / 2):F1} s " +
        $"({string.Join(", ", loras.Select(l => l.Seconds.ToString("F1")))})");
    if (montagePath is not null) WriteMontage(montagePath, photos[0].Take(5).ToList(), generated[0]);
}
finally
{
    foreach (var (server, client) in servers)
    {
        server.Kill(entireProcessTree: true);
        await server.WaitForExitAsync();
        client.Dispose();
    }
}

static SKBitmap ComposePhoto(SceneComposer composer, Random random, string colour)
{
    // A scene of the subject alone, then its background repainted in the chosen colour where the composer put
    // another: the photos differ in colour, place and size, as photos of one subject do.
    for (var attempt = 0; ; attempt++)
    {
        using var scene = composer.Compose(random);
        if (!scene.Background.StartsWith($"a {colour} background", StringComparison.Ordinal) && attempt < 400) continue;
        return scene.Image.Copy();
    }
}

static void WriteMontage(string path, List<SKBitmap> photos, List<SKBitmap> generated)
{
    const int cell = 128, gap = 6, label = 22;
    var columns = Math.Max(photos.Count, generated.Count);
    using var surface = SKSurface.Create(new SKImageInfo(columns * (cell + gap) + gap, 2 * (cell + gap + label) + gap));
    var canvas = surface.Canvas;
    canvas.Clear(SKColors.White);
    using var font = new SKFont(SKTypeface.Default, 14);
    using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
    void Row(string title, List<SKBitmap> images, int row)
    {
        var top = gap + row * (cell + gap + label);
        canvas.DrawText(title, gap, top + 15, font, ink);
        for (var i = 0; i < images.Count; i++)
            canvas.DrawBitmap(images[i], SKRect.Create(gap + i * (cell + gap), top + label, cell, cell));
    }
    Row("training photos (5 of 15)", photos, 0);
    Row("generated with the LoRA, new settings", generated, 1);
    using var image = surface.Snapshot();
    using var png = image.Encode(SKEncodedImageFormat.Png, 100);
    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
    File.WriteAllBytes(path, png.ToArray());
}
