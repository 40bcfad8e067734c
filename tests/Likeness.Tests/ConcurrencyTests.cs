using System.Net;
using Likeness.Core.Data;
using Likeness.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Likeness.Tests;

public sealed class ConcurrencyTests
{
    [Fact]
    public async Task Accepts_exactly_the_cap_out_of_50_concurrent_submissions()
    {
        // The API role runs no workers, so nothing finishes (and frees a slot) while the submissions race.
        await using var server = await LikenessServer.StartAsync(new Dictionary<string, string?> { ["Likeness:Role"] = "api" });
        var images = TestImages.Pngs(15);
        var before = await server.CreditsAsync();

        var responses = await Task.WhenAll(Enumerable.Range(0, 50).Select(async _ =>
        {
            using var client = server.CreateClient(server.ApiKey);
            return await client.PostAsync("/v2/loras", LoraForms.Create(images));
        }));

        var accepted = responses.Count(r => r.StatusCode == HttpStatusCode.Accepted);
        var limited = responses.Where(r => r.StatusCode == HttpStatusCode.TooManyRequests).ToList();
        Assert.Equal(10, accepted);
        Assert.Equal(40, limited.Count);
        foreach (var r in limited)
        {
            await Problem.AssertAsync(r, 429, "concurrency_limit");
            Assert.True(r.Headers.RetryAfter is not null);
        }
        Assert.Equal(before - 20, await server.CreditsAsync());
        var (loras, charges) = await server.WithDb(async db => (
            await db.Loras.CountAsync(),
            await db.Ledger.CountAsync(e => e.Reason == LedgerReasons.LoraCreate)));
        Assert.Equal(10, loras);
        Assert.Equal(10, charges);
        var team = await server.GetJsonAsync("/v2/team");
        Assert.Equal(10, team.GetProperty("activeTrainings").GetInt32());
        Assert.Equal(10, team.GetProperty("maxConcurrentTrainings").GetInt32());
        var blobFolders = Directory.GetDirectories(Path.Combine(server.DataFolder, "blobs", "loras"));
        Assert.Equal(10, blobFolders.Length); // refused submissions left no photos behind
    }
}
