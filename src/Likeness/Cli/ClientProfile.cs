using System.Text.Json;

namespace Likeness.Cli;

/// <summary>
/// Where <c>likeness loras|generate</c> find the server and the key: flags win over the environment
/// (<c>LIKENESS_URL</c>, <c>LIKENESS_API_KEY</c>), the environment over the profile file (<c>--profile</c>, else
/// <c>LIKENESS_PROFILE</c>, else <c>$XDG_CONFIG_HOME/likeness/profile.json</c> or <c>~/.config/likeness/profile.json</c>).
/// </summary>
internal sealed record ClientProfile(Uri Url, string ApiKey)
{
    public const string UrlVariable = "LIKENESS_URL";
    public const string KeyVariable = "LIKENESS_API_KEY";
    public const string ProfileVariable = "LIKENESS_PROFILE";
    /// <summary>Where <c>likeness serve</c> listens by default.</summary>
    public const string DefaultUrl = "http://127.0.0.1:8080";

    /// <summary>The profile file's shape: <c>{ "url": "…", "apiKey": "…" }</c>, either member optional.</summary>
    private sealed record ProfileFile(string? Url, string? ApiKey);

    public static string DefaultPath()
    {
        var config = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME") is { Length: > 0 } xdg
            ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config");
        return Path.Combine(config, "likeness", "profile.json");
    }

    /// <exception cref="ArgumentException">No key anywhere, a URL that is not absolute http(s), or an unreadable profile.</exception>
    public static ClientProfile Resolve(string? urlFlag, string? keyFlag, string? profileFlag)
    {
        var explicitPath = profileFlag ?? Environment.GetEnvironmentVariable(ProfileVariable);
        var path = explicitPath ?? DefaultPath();
        ProfileFile? file = null;
        if (File.Exists(path))
        {
            try { file = JsonSerializer.Deserialize<ProfileFile>(File.ReadAllText(path), JsonSerializerOptions.Web); }
            catch (JsonException ex) { throw new ArgumentException($"The profile {path} is not a JSON object {{ \"url\": …, \"apiKey\": … }}: {ex.Message}"); }
        }
        else if (explicitPath is not null) throw new ArgumentException($"The profile {path} does not exist.");

        var url = First(urlFlag, Environment.GetEnvironmentVariable(UrlVariable), file?.Url) ?? DefaultUrl;
        var key = First(keyFlag, Environment.GetEnvironmentVariable(KeyVariable), file?.ApiKey)
            ?? throw new ArgumentException($"No API key: pass --api-key, set {KeyVariable}, or write \"apiKey\" in {path}.");
        if (!Uri.TryCreate(url.EndsWith('/') ? url : url + "/", UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new ArgumentException($"'{url}' is not an absolute http(s) URL.");
        return new ClientProfile(uri, key);
    }

    private static string? First(params string?[] values) => values.FirstOrDefault(v => !string.IsNullOrWhiteSpace(v))?.Trim();
}
