using Likeness.Api;
using Likeness.Core.Data;
using Likeness.Core.Teams;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Likeness.Hosting;

/// <summary>
/// Runs before the server takes requests and before workers start: applies migrations, loads the shared
/// file-link secret, and on the embedded default's first start (SQLite, no team yet) creates team <c>default</c>
/// and writes its key to <c>&lt;data&gt;/default-api-key</c> (mode 0600) — the one plaintext key ever written.
/// </summary>
public sealed class Bootstrap(IServiceScopeFactory scopes, FileLinks links, IOptions<LikenessOptions> options, ILogger<Bootstrap> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        using var scope = scopes.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<LikenessDb>();
        await DatabaseSetup.MigrateAsync(db, cancellationToken);
        await links.LoadSecretAsync(db, cancellationToken);

        var o = options.Value;
        if (!DatabaseSetup.IsSqlite(o.DatabaseSetting) || await db.Teams.AnyAsync(cancellationToken)) return;
        var (team, key) = await TeamAdmin.CreateTeamAsync(db, "default", o.Bootstrap.DefaultTeamCredits, 10, TimeProvider.System, cancellationToken);
        var path = Path.Combine(o.DataFolder, "default-api-key");
        Directory.CreateDirectory(o.DataFolder);
        await File.WriteAllTextAsync(path, key + "\n", cancellationToken);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        // The key goes to the console once, never into logs that may be shipped elsewhere.
        logger.LogInformation("Created team 'default' ({Team}) with {Credits} credits; its API key is in {Path}", team.Id, team.Credits, path);
        Console.WriteLine($"API key of team 'default' (also written to {path}): {key}");
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
