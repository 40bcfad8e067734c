using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Likeness.Core.Data;
using Likeness.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;

namespace Likeness.Tests.Infrastructure;

/// <summary>
/// The real service (Kestrel on loopback, SQLite, in-process workers, the flux-tiny engine) on a fresh data folder.
/// Tests lower the training step floor through LIKENESS_TRAINING_MIN_STEPS' configuration key so that they train in seconds.
/// </summary>
public sealed class LikenessServer : IAsyncDisposable
{
    public const int TestMinSteps = 4;

    private LikenessServer(WebApplication app, string dataFolder, Uri baseAddress, string apiKey, bool keepData)
    {
        _keepData = keepData;
        App = app;
        DataFolder = dataFolder;
        BaseAddress = baseAddress;
        ApiKey = apiKey;
        Client = CreateClient(apiKey);
    }

    private readonly bool _keepData;

    public WebApplication App { get; }
    public string DataFolder { get; }
    public Uri BaseAddress { get; }
    /// <summary>The key of team 'default', read from &lt;data&gt;/default-api-key as a new user would.</summary>
    public string ApiKey { get; }
    public HttpClient Client { get; }

    /// <summary>A fresh folder path under the temp directory for one test's data (not yet created).</summary>
    public static string NewDataFolder() => Path.Combine(Path.GetTempPath(), "likeness-tests", Guid.NewGuid().ToString("N"));

    /// <summary>
    /// Starts a server; with <paramref name="dataFolder"/> given, the folder outlives it (for restarts on the same data).
    /// <paramref name="services"/> adds registrations after the service's own (a log capture, a database probe).
    /// </summary>
    public static async Task<LikenessServer> StartAsync(IDictionary<string, string?>? settings = null, string? dataFolder = null,
        Action<IServiceCollection>? services = null)
    {
        var keepData = dataFolder is not null;
        dataFolder ??= NewDataFolder();
        Directory.CreateDirectory(dataFolder);
        var overrides = new Dictionary<string, string?>
        {
            ["Likeness:Data"] = dataFolder,
            ["Likeness:Urls"] = $"http://127.0.0.1:{FreePort()}",
            ["Likeness:AllowPrivateWebhooks"] = "true",
            ["Likeness:Training:MinSteps"] = TestMinSteps.ToString(),
            ["Likeness:Training:CheckpointEvery"] = "2",
            ["Likeness:Workers:PollInterval"] = "00:00:00.100",
            // Several servers train at once in one test run on 2 cores: one engine thread each avoids oversubscription.
            ["Likeness:EngineThreads"] = "1",
            ["Likeness:Webhooks:RetrySchedule:0"] = "00:00:00.200",
            ["Likeness:Webhooks:RetrySchedule:1"] = "00:00:00.500",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        if (settings is not null) foreach (var (k, v) in settings) overrides[k] = v;
        var app = LikenessHost.BuildApp(overrides, extraServices: services);
        await app.StartAsync();
        var baseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        var keyFile = Path.Combine(dataFolder, "default-api-key");
        string key;
        if (File.Exists(keyFile)) key = (await File.ReadAllTextAsync(keyFile)).Trim();
        else
        {
            // Only the embedded default (SQLite) makes team 'default' by itself; on PostgreSQL an operator does.
            using var scope = app.Services.CreateScope();
            var db = scope.ServiceProvider.GetRequiredService<Core.Data.LikenessDb>();
            key = (await Core.Teams.TeamAdmin.CreateTeamAsync(db, "default", 10_000, 10, TimeProvider.System, default)).ApiKey;
            await File.WriteAllTextAsync(keyFile, key);
        }
        return new LikenessServer(app, dataFolder, baseAddress, key, keepData);
    }

    /// <summary>A free loopback port, so that the public URL (links in responses) names the real port.</summary>
    public static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    public HttpClient CreateClient(string? apiKey)
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromMinutes(3) };
        if (apiKey is not null) client.DefaultRequestHeaders.Add("X-API-Key", apiKey);
        return client;
    }

    /// <summary>Runs a block against the real database.</summary>
    public async Task<T> WithDb<T>(Func<LikenessDb, Task<T>> action)
    {
        using var scope = App.Services.CreateScope();
        return await action(scope.ServiceProvider.GetRequiredService<LikenessDb>());
    }

    public async Task<JsonElement> GetJsonAsync(string path, HttpClient? client = null)
    {
        var response = await (client ?? Client).GetAsync(path);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"GET {path} → {(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    public async Task<long> CreditsAsync(HttpClient? client = null) =>
        (await GetJsonAsync("/v2/team", client)).GetProperty("credits").GetInt64();

    /// <summary>Polls a LoRA until <paramref name="done"/> holds, returning every status seen on the way.</summary>
    public async Task<(JsonElement Lora, List<string> Seen)> WaitForLoraAsync(string id, Func<JsonElement, bool> done, TimeSpan? timeout = null, HttpClient? client = null)
    {
        var seen = new List<string>();
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromMinutes(3));
        while (true)
        {
            var lora = await GetJsonAsync($"/v2/loras/{id}", client);
            var status = lora.GetProperty("status").GetString()!;
            if (seen.Count == 0 || seen[^1] != status) seen.Add(status);
            if (done(lora)) return (lora, seen);
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"LoRA {id} stayed {status}; seen {string.Join(" → ", seen)}; last: {lora}.");
            await Task.Delay(50);
        }
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        if (_keepData) return;
        try { Directory.Delete(DataFolder, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
