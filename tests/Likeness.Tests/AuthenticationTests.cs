using System.Diagnostics;
using System.Net.Http.Headers;
using Likeness.Core.Teams;
using Likeness.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Likeness.Tests;

/// <summary>The key lookup on every request (a few seconds' cache over a plain read since issue #11) keeps its rules.</summary>
public sealed class AuthenticationTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private LikenessServer Server => fixture.Server;

    [Fact]
    public async Task A_revoked_key_is_refused_at_its_very_next_request()
    {
        var (_, key) = await Server.WithDb(db => TeamAdmin.CreateTeamAsync(db, "revoked-" + Guid.NewGuid().ToString("N")[..8], 100, 1, TimeProvider.System, default));
        using var client = Server.CreateClient(key);
        Assert.Equal(100, await Server.CreditsAsync(client));
        using var bearer = Server.CreateClient(apiKey: null);
        bearer.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        Assert.Equal(100, await Server.CreditsAsync(bearer));

        Assert.True(await Server.WithDb(db => TeamAdmin.RevokeKeyAsync(db, key, TimeProvider.System, default)));
        await Problem.AssertAsync(await client.GetAsync("/v2/team"), 401, "unauthorized");
        await Problem.AssertAsync(await bearer.GetAsync("/v2/loras"), 401, "unauthorized");
        // A key that differs in one character is as unknown as any other.
        using var near = Server.CreateClient(Server.ApiKey[..^1] + (Server.ApiKey[^1] == 'a' ? 'b' : 'a'));
        await Problem.AssertAsync(await near.GetAsync("/v2/team"), 401, "unauthorized");
        // The fixture's own key still works.
        Assert.True((await Server.Client.GetAsync("/v2/team")).IsSuccessStatusCode);
    }

    [Fact]
    public async Task A_key_revoked_by_another_process_is_refused_within_the_cache_lifetime()
    {
        var (team, key) = await Server.WithDb(db => TeamAdmin.CreateTeamAsync(db, "elsewhere-" + Guid.NewGuid().ToString("N")[..8], 100, 1, TimeProvider.System, default));
        using var client = Server.CreateClient(key);
        Assert.Equal(100, await Server.CreditsAsync(client));

        // As the CLI or another node revokes it: the row changes, and this process hears nothing of it.
        await Server.WithDb(db => db.ApiKeys.Where(k => k.TeamId == team.Id).ExecuteUpdateAsync(s => s.SetProperty(k => k.RevokedAt, DateTime.UtcNow)));
        var since = Stopwatch.StartNew();
        while ((await client.GetAsync("/v2/team")).IsSuccessStatusCode)
        {
            Assert.True(since.Elapsed < ApiKeyCache.Lifetime + TimeSpan.FromSeconds(1), $"still accepted {since.Elapsed} after its revocation");
            await Task.Delay(100);
        }
        await Problem.AssertAsync(await client.GetAsync("/v2/loras"), 401, "unauthorized");
    }
}
