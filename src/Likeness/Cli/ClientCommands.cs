using System.CommandLine;
using System.Text.Json;
using Likeness.Api;
using Likeness.Core.Data;
using Likeness.Core.Generations;
using Spectre.Console;

namespace Likeness.Cli;

/// <summary>
/// The terminal client: <c>loras create|list|get|cancel|delete</c> and <c>generate</c>, over HTTP to any Likeness server,
/// on the records the API declares. A refusal prints its problem on one line and exits 1; a setup error exits 2.
/// </summary>
internal static class ClientCommands
{
    private static readonly string[] PhotoExtensions = [".jpg", ".jpeg", ".png", ".webp"];
    private static readonly JsonSerializerOptions Indented = new(ApiJson.Options) { WriteIndented = true };

    private static readonly Option<string?> Url = new("--url")
    {
        Description = $"The server's base URL (else {ClientProfile.UrlVariable}, else the profile's url, else {ClientProfile.DefaultUrl}).",
        Recursive = true,
    };
    private static readonly Option<string?> ApiKey = new("--api-key")
    {
        Description = $"The team's API key (else {ClientProfile.KeyVariable}, else the profile's apiKey).", Recursive = true,
    };
    private static readonly Option<string?> Profile = new("--profile")
    {
        Description = $"A JSON file {{ \"url\": …, \"apiKey\": … }} (else {ClientProfile.ProfileVariable}, else ~/.config/likeness/profile.json).",
        Recursive = true,
    };

    public static Command Loras()
    {
        var loras = new Command("loras", "Train and manage LoRAs on a Likeness server.") { Create(), List(), Get(), Cancel(), Delete() };
        loras.Options.Add(Url);
        loras.Options.Add(ApiKey);
        loras.Options.Add(Profile);
        return loras;
    }

    private static Command Create()
    {
        var photos = new Option<DirectoryInfo>("--photos") { Description = "A folder of 15–30 photos: every .jpg, .jpeg, .png and .webp in it is uploaded.", Required = true };
        var name = new Option<string>("--name") { Description = "The LoRA's name (1–60 characters).", Required = true };
        var kind = new Option<string?>("--subject-kind") { Description = "person (default), style or object." };
        kind.AcceptOnlyFromAmong(LoraForm.SubjectKinds);
        var gender = new Option<string?>("--gender") { Description = "For a person: female, male or non-binary." };
        gender.AcceptOnlyFromAmong(LoraForm.Genders);
        var ethnicity = new Option<string?>("--ethnicity") { Description = "For a person, free text." };
        var age = new Option<string?>("--age") { Description = "Optional, free text." };
        var steps = new Option<int?>("--steps") { Description = "Training steps (default 1000)." };
        var rank = new Option<int?>("--lora-rank") { Description = "LoRA rank, 8–64 (default 32)." };
        var webhook = new Option<string?>("--webhook-url") { Description = "Notified when the training ends." };
        var metadata = new Option<string?>("--metadata") { Description = "A JSON object of string values kept with the LoRA." };
        var wait = new Option<bool>("--wait") { Description = "Follow the training to READY or FAILED with a progress bar." };
        var command = new Command("create", "Upload the photos of a folder and start a training.")
            { photos, name, kind, gender, ethnicity, age, steps, rank, webhook, metadata, wait };
        command.SetAction((r, ct) => Run(r, async api =>
        {
            var folder = r.GetValue(photos)!;
            if (!folder.Exists) throw new ArgumentException($"The folder {folder.FullName} does not exist.");
            var files = folder.EnumerateFiles().Where(f => PhotoExtensions.Contains(f.Extension.ToLowerInvariant()))
                .OrderBy(f => f.Name, StringComparer.Ordinal).ToList();
            var fields = new LoraFormFields(r.GetValue(name)!, r.GetValue(kind), r.GetValue(gender), r.GetValue(ethnicity), r.GetValue(age),
                r.GetValue(steps), r.GetValue(rank), r.GetValue(webhook), Metadata: r.GetValue(metadata));

            LoraCreated created = null!;
            await Bars().StartAsync(async ctx =>
            {
                var upload = ctx.AddTask($"uploading {files.Count} photos", maxValue: Math.Max(1, files.Sum(f => f.Length)));
                created = await api.CreateLoraAsync(fields, files, new Progress<long>(n => upload.Value = Math.Min(n, upload.MaxValue)), ct);
                upload.Value = upload.MaxValue;
            });
            Console.WriteLine($"{created.Id} {created.Status} ({created.ImageCount} photos)");
            if (!r.GetValue(wait)) return 0;

            var lora = await FollowAsync(api, created.Id, ct);
            return Outcome(lora);
        }, ct));
        return command;
    }

    /// <summary>Polls the LoRA until it ends, its phase, step and the server's ETA on a live bar.</summary>
    private static async Task<LoraResponse> FollowAsync(ApiClient api, string id, CancellationToken ct)
    {
        LoraResponse lora = null!;
        await Bars().StartAsync(async ctx =>
        {
            var bar = ctx.AddTask(LoraStatus.Pending, maxValue: 1);
            while (true)
            {
                lora = await api.GetLoraAsync(id, ct);
                if (lora.Progress is { } p)
                {
                    bar.MaxValue = Math.Max(1, p.TotalSteps);
                    bar.Value = p.Step;
                }
                bar.Description = Markup.Escape(lora.Progress is { } q
                    ? $"{lora.Status} {(q.Phase == LoraProgress.Captioning ? "captioned" : "step")} {q.Step}/{q.TotalSteps}" +
                      (q.EtaSeconds is { } eta ? $", ETA {TimeSpan.FromSeconds(eta):g}" : "")
                    : lora.Status);
                if (!LoraStatus.IsActive(lora.Status))
                {
                    if (lora.Status == LoraStatus.Ready) bar.Value = bar.MaxValue;
                    bar.StopTask();
                    return;
                }
                await Task.Delay(TimeSpan.FromMilliseconds(500), ct);
            }
        });
        return lora;
    }

    private static int Outcome(LoraResponse lora)
    {
        if (lora.Status == LoraStatus.Ready)
        {
            Console.WriteLine($"{lora.Id} READY trigger word {lora.TriggerWord}");
            return 0;
        }
        Console.Error.WriteLine($"likeness: {lora.Id} {lora.Status}" + (lora.Error is { } e ? $" {e.Code}: {e.Message}" : ""));
        return 1;
    }

    private static Command List()
    {
        var limit = new Option<int>("--limit") { Description = "At most this many, newest first (1–100).", DefaultValueFactory = _ => 24 };
        var status = new Option<string?>("--status") { Description = "Only LoRAs in this status." };
        status.AcceptOnlyFromAmong(LoraStatus.All);
        var all = new Option<bool>("--include-archived") { Description = "Archived LoRAs too." };
        var cursor = new Option<string?>("--cursor") { Description = "The next page: the cursor a previous --json listing returned." };
        var json = new Option<bool>("--json") { Description = "Print the page as the API returns it." };
        var command = new Command("list", "The team's LoRAs, one per line: id, status, progress, name.") { limit, status, all, cursor, json };
        command.SetAction((r, ct) => Run(r, async api =>
        {
            var page = await api.ListLorasAsync(r.GetValue(limit), r.GetValue(status), r.GetValue(all), r.GetValue(cursor), ct);
            if (r.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(page, Indented));
                return 0;
            }
            foreach (var l in page.Items)
            {
                var progress = l.Progress is { } p ? $"{p.Step}/{p.TotalSteps}" : "-";
                Console.WriteLine($"{l.Id}  {l.Status,-9}  {progress,-9}  {l.Name}");
            }
            if (page.NextCursor is not null) Console.WriteLine($"more: --cursor {page.NextCursor}");
            return 0;
        }, ct));
        return command;
    }

    private static Command Get() => ById("get", "One LoRA as the API returns it (JSON).", (api, id, _, ct) => api.GetLoraAsync(id, ct), json: true);

    private static Command Cancel() => ById("cancel", "Cancel a training before it is READY (full refund).", (api, id, _, ct) => api.CancelLoraAsync(id, ct));

    private static Command Delete()
    {
        var purge = new Option<bool>("--purge") { Description = "Also erase its photos, dataset, adapter and generated images." };
        return ById("delete", "Archive a LoRA (cancelling it first if it is still training).", (api, id, r, ct) => api.ArchiveLoraAsync(id, r.GetValue(purge), ct),
            extra: purge);
    }

    private static Command ById(string name, string description, Func<ApiClient, string, ParseResult, CancellationToken, Task<LoraResponse>> call,
        bool json = false, Option? extra = null)
    {
        var id = new Argument<string>("id") { Description = "The LoRA's id (lora_…)." };
        var command = new Command(name, description) { id };
        if (extra is not null) command.Options.Add(extra);
        command.SetAction((r, ct) => Run(r, async api =>
        {
            var lora = await call(api, r.GetValue(id)!, r, ct);
            Console.WriteLine(json ? JsonSerializer.Serialize(lora, Indented) : $"{lora.Id} {lora.Status}");
            return 0;
        }, ct));
        return command;
    }

    public static Command Generate()
    {
        var lora = new Option<string>("--lora") { Description = "A READY LoRA's id.", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "What to draw (the trigger word is prepended unless present).", Required = true };
        var output = new Option<DirectoryInfo>("--out") { Description = "The folder the images are written to (made if missing).", Required = true };
        var count = new Option<int?>("--num-outputs") { Description = "1–4 images (default 1)." };
        var ratio = new Option<string?>("--aspect-ratio") { Description = "1:1 (default), 16:9, 9:16, 4:3, 3:4, 3:2 or 2:3." };
        ratio.AcceptOnlyFromAmong(AspectRatios.All);
        var format = new Option<string?>("--format") { Description = "png (default), jpg or webp." };
        format.AcceptOnlyFromAmong(GenerateRequest.Formats);
        var strength = new Option<double?>("--lora-strength") { Description = "0–1.5 (default 1)." };
        var guidance = new Option<double?>("--guidance-scale") { Description = "1–10 (default 3.5)." };
        var steps = new Option<int?>("--steps") { Description = "Sampling steps, 4–50 (default 28)." };
        var seed = new Option<long?>("--seed") { Description = "Same inputs and seed, same images (default random)." };
        var command = new Command("generate", "Generate photos with a READY LoRA and save them.")
            { lora, prompt, output, count, ratio, format, strength, guidance, steps, seed, Url, ApiKey, Profile };
        command.SetAction((r, ct) => Run(r, async api =>
        {
            var body = new GenerateBody(GenerateRequest.Model, r.GetValue(prompt)!, new FluxLoraParams(r.GetValue(lora)!, r.GetValue(count),
                r.GetValue(ratio), r.GetValue(format), r.GetValue(strength), r.GetValue(guidance), r.GetValue(steps), r.GetValue(seed)));
            GenerationResponse generation = null!;
            await AnsiConsole.Status().StartAsync("generating…", async _ => generation = await api.GenerateAsync(body, ct));
            if (generation.Status == GenerationStatus.Failed)
            {
                Console.Error.WriteLine($"likeness: {generation.Id} FAILED {generation.Error?.Code}: {generation.Error?.Message}");
                return 1;
            }
            var folder = r.GetValue(output)!;
            folder.Create();
            foreach (var (image, i) in generation.Images.Select((image, i) => (image, i)))
            {
                var extension = image.ContentType switch { "image/jpeg" => "jpg", "image/webp" => "webp", _ => "png" };
                var path = Path.Combine(folder.FullName, $"{generation.Id}-{i}.{extension}");
                await api.DownloadAsync(image.Url, path, ct);
                Console.WriteLine($"{path}  {image.Width}x{image.Height} seed {image.Seed}");
            }
            return 0;
        }, ct));
        return command;
    }

    private static Progress Bars() => AnsiConsole.Progress().AutoClear(false)
        .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn());

    /// <summary>Resolves the server and key, runs the verb, and turns a refusal into one line on stderr.</summary>
    private static async Task<int> Run(ParseResult r, Func<ApiClient, Task<int>> verb, CancellationToken ct)
    {
        ClientProfile profile;
        try { profile = ClientProfile.Resolve(r.GetValue(Url), r.GetValue(ApiKey), r.GetValue(Profile)); }
        catch (ArgumentException ex)
        {
            await Console.Error.WriteLineAsync("likeness: " + ex.Message);
            return 2;
        }
        using var api = ApiClient.Create(profile);
        try { return await verb(api); }
        catch (ApiProblemException ex) { await Console.Error.WriteLineAsync("likeness: " + ex.Message); }
        catch (ArgumentException ex)
        {
            await Console.Error.WriteLineAsync("likeness: " + ex.Message);
            return 2;
        }
        catch (HttpRequestException ex) { await Console.Error.WriteLineAsync($"likeness: {profile.Url} could not be reached: {ex.Message}"); }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested) { await Console.Error.WriteLineAsync($"likeness: {profile.Url} did not answer in time."); }
        return 1;
    }
}
