using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Likeness.Core.Data;
using Likeness.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;

namespace Likeness.Tests;

/// <summary>Cancel, archive, refunds, listing and the ledger, on a server whose workers are idle (API role).</summary>
public sealed class LifecycleTests : IAsyncLifetime
{
    private LikenessServer _server = null!;

    public async Task InitializeAsync() =>
        _server = await LikenessServer.StartAsync(new Dictionary<string, string?> { ["Likeness:Role"] = "api" });

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private async Task<string> CreateAsync(int seed, IDictionary<string, string>? fields = null)
    {
        var response = await _server.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, seed), fields));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
    }

    [Fact]
    public async Task Cancel_fails_the_lora_and_refunds_everything()
    {
        var before = await _server.CreditsAsync();
        var id = await CreateAsync(0);
        Assert.Equal(before - 2, await _server.CreditsAsync());

        var cancelled = await _server.Client.PostAsync($"/v2/loras/{id}/cancel", null);
        var lora = await cancelled.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(HttpStatusCode.OK, cancelled.StatusCode);
        Assert.Equal("FAILED", lora.GetProperty("status").GetString());
        Assert.Equal("canceled", lora.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(JsonValueKind.Null, lora.GetProperty("triggerWord").ValueKind);
        Assert.Equal(before, await _server.CreditsAsync());

        var again = await Problem.AssertAsync(await _server.Client.PostAsync($"/v2/loras/{id}/cancel", null), 409, "not_cancellable");
        Assert.EndsWith("this one is FAILED.", again.GetProperty("detail").GetString());
        await Problem.AssertAsync(await _server.Client.GetAsync($"/v2/loras/{id}/weights"), 409, "lora_not_ready");

        var ledger = await _server.GetJsonAsync("/v2/team/ledger");
        var items = ledger.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal("refund", items[0].GetProperty("reason").GetString());
        Assert.Equal(2, items[0].GetProperty("amount").GetInt64());
        Assert.Equal(id, items[0].GetProperty("loraId").GetString());
        Assert.Equal("lora_create", items[1].GetProperty("reason").GetString());
        Assert.Equal(-2, items[1].GetProperty("amount").GetInt64());
        Assert.Equal(items[0].GetProperty("balanceAfter").GetInt64(), await _server.CreditsAsync());
    }

    [Fact]
    public async Task Archive_cancels_hides_and_is_idempotent()
    {
        var before = await _server.CreditsAsync();
        var id = await CreateAsync(20, new Dictionary<string, string> { ["metadata"] = "{\"userId\":\"u_1\"}" });
        var archived = await (await _server.Client.DeleteAsync($"/v2/loras/{id}")).Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("ARCHIVED", archived.GetProperty("status").GetString());
        Assert.Equal("canceled", archived.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal("u_1", archived.GetProperty("metadata").GetProperty("userId").GetString());
        Assert.NotEqual(JsonValueKind.Null, archived.GetProperty("archivedAt").ValueKind);
        Assert.Equal(before, await _server.CreditsAsync());

        var again = await _server.Client.DeleteAsync($"/v2/loras/{id}");
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal(before, await _server.CreditsAsync());

        var list = await _server.GetJsonAsync("/v2/loras");
        Assert.DoesNotContain(list.GetProperty("items").EnumerateArray(), l => l.GetProperty("id").GetString() == id);
        var all = await _server.GetJsonAsync("/v2/loras?includeArchived=true");
        Assert.Contains(all.GetProperty("items").EnumerateArray(), l => l.GetProperty("id").GetString() == id);

        var generate = await _server.Client.PostAsJsonAsync("/v2/images/generate",
            new { model = "flux-lora", prompt = "x", fluxLoraParams = new { loraId = id } });
        await Problem.AssertAsync(generate, 410, "lora_archived");
    }

    [Fact]
    public async Task Purge_erases_the_photos()
    {
        var id = await CreateAsync(40);
        var folder = Path.Combine(_server.DataFolder, "blobs", "loras", id);
        Assert.True(Directory.Exists(folder));
        var response = await _server.Client.DeleteAsync($"/v2/loras/{id}?purge=true");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.False(Directory.Exists(folder));
        Assert.True(await _server.WithDb(db => db.Loras.AnyAsync(l => l.Id == id))); // the record stays
    }

    [Fact]
    public async Task Generating_with_a_lora_that_is_not_ready_is_409_and_charges_nothing()
    {
        var id = await CreateAsync(60);
        var before = await _server.CreditsAsync();
        var response = await _server.Client.PostAsJsonAsync("/v2/images/generate",
            new { model = "flux-lora", prompt = "x", fluxLoraParams = new { loraId = id } });
        await Problem.AssertAsync(response, 409, "lora_not_ready");
        Assert.Equal(before, await _server.CreditsAsync());
    }

    [Fact]
    public async Task Lists_newest_first_with_cursors_that_skip_and_repeat_nothing()
    {
        var ids = new List<string>();
        for (var i = 0; i < 5; i++) ids.Add(await CreateAsync(100 + i * 20, new Dictionary<string, string> { ["name"] = $"n{i}" }));
        var seen = new List<string>();
        string? cursor = null;
        var page = 0;
        do
        {
            var json = await _server.GetJsonAsync("/v2/loras?limit=2" + (cursor is null ? "" : $"&cursor={cursor}"));
            seen.AddRange(json.GetProperty("items").EnumerateArray().Select(l => l.GetProperty("id").GetString()!));
            cursor = json.GetProperty("nextCursor").GetString();
            if (page++ == 0) ids.Add(await CreateAsync(300)); // created while paging: must not appear later
        } while (cursor is not null);
        var expected = ids.Take(5).Reverse().ToList();
        Assert.Equal(expected, seen.Where(expected.Contains).ToList());
        Assert.Equal(seen.Count, seen.Distinct().Count());
        Assert.DoesNotContain(ids[^1], seen);
    }

    [Theory]
    [InlineData("/v2/loras?limit=0", 400, "validation_failed")]
    [InlineData("/v2/loras?limit=101", 400, "validation_failed")]
    [InlineData("/v2/loras?cursor=%%%", 400, "invalid_cursor")]
    [InlineData("/v2/loras?cursor=bm9wZQ", 400, "invalid_cursor")]
    // "9223372036854775807:lora_…": ticks past DateTime.MaxValue
    [InlineData("/v2/loras?cursor=OTIyMzM3MjAzNjg1NDc3NTgwNzpsb3JhXzAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAw", 400, "invalid_cursor")]
    [InlineData("/v2/loras?status=DONE", 400, "validation_failed")]
    [InlineData("/v2/loras/abc", 400, "invalid_id")]
    [InlineData("/v2/loras/lora_0000000000000000000000000u", 400, "invalid_id")]
    [InlineData("/v2/loras/lora_00000000000000000000000000", 404, "not_found")]
    [InlineData("/v2/images/img_00000000000000000000000000", 404, "not_found")]
    [InlineData("/v2/images/nope", 400, "invalid_id")]
    [InlineData("/v2/team/ledger?cursor=zz", 400, "invalid_cursor")]
    // "3155378976000000000:1": ticks one past DateTime.MaxValue
    [InlineData("/v2/team/ledger?cursor=MzE1NTM3ODk3NjAwMDAwMDAwMDox", 400, "invalid_cursor")]
    public async Task Refuses_bad_reads(string path, int status, string code) =>
        await Problem.AssertAsync(await _server.Client.GetAsync(path), status, code);

    [Fact]
    public async Task Another_teams_lora_is_not_found()
    {
        var id = await CreateAsync(400);
        var other = await _server.WithDb(db => Core.Teams.TeamAdmin.CreateTeamAsync(db, "other-" + Guid.NewGuid().ToString("N")[..6], 100, 10, TimeProvider.System, default));
        var client = _server.CreateClient(other.ApiKey);
        await Problem.AssertAsync(await client.GetAsync($"/v2/loras/{id}"), 404, "not_found");
        await Problem.AssertAsync(await client.DeleteAsync($"/v2/loras/{id}"), 404, "not_found");
        await Problem.AssertAsync(await client.PostAsync($"/v2/loras/{id}/cancel", null), 404, "not_found");
    }

    [Fact]
    public async Task Idempotency_key_replays_the_same_lora_and_charges_once()
    {
        var before = await _server.CreditsAsync();
        async Task<HttpResponseMessage> Post(int seed, string name)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v2/loras")
            {
                Content = LoraForms.Create(TestImages.Pngs(15, seed), new Dictionary<string, string> { ["name"] = name }),
            };
            request.Headers.Add("Idempotency-Key", "create-1");
            return await _server.Client.SendAsync(request);
        }
        var first = await Post(500, "same");
        var second = await Post(500, "same"); // new multipart boundary, same content
        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, second.StatusCode);
        var a = (await first.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString();
        var b = (await second.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString();
        Assert.Equal(a, b);
        Assert.Equal(before - 2, await _server.CreditsAsync());

        await Problem.AssertAsync(await Post(500, "different"), 422, "idempotency_key_reused");
        Assert.Equal(before - 2, await _server.CreditsAsync());
    }

    [Fact]
    public async Task Team_reports_credits_equal_to_the_ledger_sum()
    {
        await CreateAsync(600);
        var team = await _server.GetJsonAsync("/v2/team");
        var sum = await _server.WithDb(db => db.Ledger.Where(e => e.TeamId == team.GetProperty("id").GetString()).SumAsync(e => e.Amount));
        Assert.Equal(sum, team.GetProperty("credits").GetInt64());
        Assert.Equal("default", team.GetProperty("name").GetString());
    }
}
