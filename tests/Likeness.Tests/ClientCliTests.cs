using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.RegularExpressions;
using Likeness.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Likeness.Tests;

/// <summary><c>likeness loras …</c> and <c>likeness generate</c>, the built executable against a real server on loopback.</summary>
public sealed partial class ClientCliTests(ServerFixture fixture) : IClassFixture<ServerFixture>, IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("likeness-cli-").FullName;
    private LikenessServer Server => fixture.Server;
    private string[] Flags => ["--url", Server.BaseAddress.ToString(), "--api-key", Server.ApiKey];

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [GeneratedRegex("lora_[0-9a-hjkmnp-tv-z]{26}")]
    private static partial Regex LoraId();

    private string Photos(int count, int seed)
    {
        var folder = Directory.CreateDirectory(Path.Combine(_folder, $"photos-{count}-{seed}")).FullName;
        foreach (var (png, i) in TestImages.Pngs(count, seed).Select((p, i) => (p, i))) File.WriteAllBytes(Path.Combine(folder, $"photo{i:00}.png"), png);
        File.WriteAllText(Path.Combine(folder, "notes.txt"), "not a photo: left out of the upload");
        return folder;
    }

    private static async Task<(int ExitCode, string Output, string[] Errors)> RunAsync(IReadOnlyDictionary<string, string?> environment, params string[] args)
    {
        using var process = LikenessProcess.Start(environment, args);
        var code = await process.WaitForExitAsync(TimeSpan.FromMinutes(4));
        return (code, process.Output, process.Errors);
    }

    private Task<(int ExitCode, string Output, string[] Errors)> RunAsync(params string[] args) => RunAsync(new Dictionary<string, string?>(), [.. args, .. Flags]);

    [Fact]
    public async Task Creates_and_follows_a_lora_to_ready_then_lists_gets_generates_and_deletes_it()
    {
        var created = await RunAsync("loras", "create", "--photos", Photos(15, seed: 900), "--name", "CLI subject", "--subject-kind", "object",
            "--steps", LikenessServer.TestMinSteps.ToString(), "--lora-rank", "8", "--metadata", "{\"via\":\"cli\"}", "--wait");
        Assert.True(created.ExitCode == 0, created.Output);
        var id = LoraId().Match(created.Output).Value;
        Assert.Contains($"{id} PENDING (15 photos)", created.Output);
        Assert.Matches($"{id} READY trigger word [A-Z]{{5}}", created.Output);

        // The server and the key from the environment this time.
        var environment = new Dictionary<string, string?> { ["LIKENESS_URL"] = Server.BaseAddress.ToString(), ["LIKENESS_API_KEY"] = Server.ApiKey };
        var listed = await RunAsync(environment, "loras", "list");
        Assert.True(listed.ExitCode == 0, listed.Output);
        Assert.Matches($"{id}  READY +{LikenessServer.TestMinSteps}/{LikenessServer.TestMinSteps} +CLI subject", listed.Output);

        var got = await RunAsync("loras", "get", id);
        Assert.True(got.ExitCode == 0, got.Output);
        var lora = JsonDocument.Parse(got.Output).RootElement;
        Assert.Equal("READY", lora.GetProperty("status").GetString());
        Assert.Equal("cli", lora.GetProperty("metadata").GetProperty("via").GetString());
        Assert.Equal(15, lora.GetProperty("imageCount").GetInt32());

        var images = Path.Combine(_folder, "out");
        var generated = await RunAsync("generate", "--lora", id, "--prompt", "a portrait in a garden", "--out", images,
            "--num-outputs", "2", "--steps", "4", "--seed", "11", "--format", "png");
        Assert.True(generated.ExitCode == 0, generated.Output);
        var files = Directory.GetFiles(images).Order().ToList();
        Assert.Equal(2, files.Count);
        foreach (var file in files)
        {
            Assert.Contains(file, generated.Output);
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(file)[..4]);
        }

        var deleted = await RunAsync("loras", "delete", id);
        Assert.True(deleted.ExitCode == 0, deleted.Output);
        Assert.Contains($"{id} ARCHIVED", deleted.Output);
    }

    [Fact]
    public async Task A_refusal_prints_the_problem_on_one_line_and_exits_non_zero()
    {
        var before = await Server.CreditsAsync();
        var tooFew = await RunAsync("loras", "create", "--photos", Photos(14, seed: 950), "--name", "Too few", "--subject-kind", "object");
        Assert.Equal(1, tooFew.ExitCode);
        Assert.Equal("likeness: 400 too_few_images: Upload at least 15 images in 'images' parts; got 14.", Assert.Single(tooFew.Errors));
        Assert.Equal(before, await Server.CreditsAsync());

        var badKey = await RunAsync(new Dictionary<string, string?>(), "loras", "list", "--url", Server.BaseAddress.ToString(), "--api-key", "lk_not_a_key");
        Assert.Equal(1, badKey.ExitCode);
        Assert.StartsWith("likeness: 401 unauthorized: ", Assert.Single(badKey.Errors));

        var missing = await RunAsync("loras", "get", "lora_" + new string('0', 26));
        Assert.Equal(1, missing.ExitCode);
        Assert.Equal("likeness: 404 not_found: The LoRA was not found.", Assert.Single(missing.Errors));

        var invalid = await RunAsync("loras", "create", "--photos", Photos(15, seed: 960), "--name", "Person without fields");
        Assert.Equal(1, invalid.ExitCode);
        Assert.StartsWith("likeness: 400 validation_failed: One or more fields are invalid: ", Assert.Single(invalid.Errors));
        Assert.Contains("gender is required", invalid.Errors[0]);
    }

    [Fact]
    public async Task Retries_429_and_503_after_their_Retry_After()
    {
        // An overloaded proxy in front of the server: it turns the first two calls away, then passes calls through.
        var turnedAway = new ConcurrentQueue<int>([429, 503]);
        var seen = new ConcurrentQueue<DateTime>();
        using var upstream = Server.CreateClient(null);
        var (proxy, address) = await Loopback.StartAsync(app => app.Map("/{**path}", async (HttpContext http) =>
        {
            seen.Enqueue(DateTime.UtcNow);
            if (turnedAway.TryDequeue(out var status))
            {
                http.Response.Headers.RetryAfter = "2";
                return Results.StatusCode(status);
            }
            using var forward = new HttpRequestMessage(HttpMethod.Get, http.Request.Path + http.Request.QueryString);
            forward.Headers.Add("X-API-Key", http.Request.Headers["X-API-Key"].ToString());
            using var answer = await upstream.SendAsync(forward);
            return Results.Content(await answer.Content.ReadAsStringAsync(), "application/json", statusCode: (int)answer.StatusCode);
        }));
        await using (proxy)
        {
            var listed = await RunAsync(new Dictionary<string, string?>(), "loras", "list", "--url", address, "--api-key", Server.ApiKey);
            Assert.True(listed.ExitCode == 0, listed.Output);
            var times = seen.ToList();
            Assert.Equal(3, times.Count);
            // Retry-After: 2 each time, not the 1 s (then 2 s) exponential backoff with jitter it replaces.
            Assert.All(times.Zip(times.Skip(1)), pair => Assert.True(pair.Second - pair.First >= TimeSpan.FromSeconds(1.9), $"retried after {pair.Second - pair.First}"));
        }
    }

    [Fact]
    public async Task Flags_win_over_the_environment_and_the_environment_over_the_profile_file()
    {
        var config = Path.Combine(_folder, "config");
        Directory.CreateDirectory(Path.Combine(config, "likeness"));
        await File.WriteAllTextAsync(Path.Combine(config, "likeness", "profile.json"),
            JsonSerializer.Serialize(new { url = Server.BaseAddress.ToString(), apiKey = Server.ApiKey }));
        var fromProfile = new Dictionary<string, string?> { ["XDG_CONFIG_HOME"] = config, ["LIKENESS_PROFILE"] = null };

        var profileOnly = await RunAsync(fromProfile, "loras", "list");
        Assert.True(profileOnly.ExitCode == 0, profileOnly.Output);

        var environmentOverProfile = await RunAsync(new Dictionary<string, string?>(fromProfile) { ["LIKENESS_API_KEY"] = "lk_wrong" }, "loras", "list");
        Assert.Equal(1, environmentOverProfile.ExitCode);
        Assert.StartsWith("likeness: 401 unauthorized", Assert.Single(environmentOverProfile.Errors));

        var flagOverEnvironment = await RunAsync(new Dictionary<string, string?>(fromProfile) { ["LIKENESS_API_KEY"] = "lk_wrong" },
            "loras", "list", "--api-key", Server.ApiKey);
        Assert.True(flagOverEnvironment.ExitCode == 0, flagOverEnvironment.Output);

        var nothing = await RunAsync(new Dictionary<string, string?> { ["XDG_CONFIG_HOME"] = Path.Combine(_folder, "empty"), ["LIKENESS_PROFILE"] = null },
            "loras", "list");
        Assert.Equal(2, nothing.ExitCode);
        Assert.StartsWith("likeness: No API key", Assert.Single(nothing.Errors));
    }
}
