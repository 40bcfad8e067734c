using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Likeness.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using StandardWebhooks;

namespace Likeness.Tests;

/// <summary>Webhooks from the real pipeline to a real receiver, verified with the StandardWebhooks package.</summary>
public sealed class WebhookTests(ServerFixture fixture) : IClassFixture<ServerFixture>
{
    private LikenessServer Server => fixture.Server;

    private StandardWebhook Verifier => new("whsec_" + Convert.ToBase64String(SHA256.HashData(Encoding.UTF8.GetBytes(Server.ApiKey))));

    [Fact]
    public async Task Signs_the_completed_event_with_the_api_key_hash_and_retries_after_a_failure()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        receiver.Script(500); // the first attempt fails, the retry succeeds
        var response = await Server.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, 700), new Dictionary<string, string>
        {
            ["webhookUrl"] = receiver.Url, ["metadata"] = "{\"userId\":\"u_9\"}", ["name"] = "hooked",
        }));
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        var (lora, _) = await Server.WaitForLoraAsync(id, l => l.GetProperty("status").GetString() is "READY" or "FAILED");
        Assert.Equal("READY", lora.GetProperty("status").GetString());

        var deliveries = await receiver.WaitForAsync(2);
        foreach (var d in deliveries) Verifier.Verify(d.Body, d.Headers); // throws when the signature is wrong
        Assert.Equal(deliveries[0].Headers["webhook-id"].ToString(), deliveries[1].Headers["webhook-id"].ToString());
        Assert.Equal(deliveries[0].Body, deliveries[1].Body);

        var payload = JsonDocument.Parse(deliveries[1].Body).RootElement;
        Assert.Equal("completed", payload.GetProperty("event").GetString());
        Assert.Equal(id, payload.GetProperty("id").GetString());
        Assert.Equal("READY", payload.GetProperty("status").GetString());
        Assert.Equal(15, payload.GetProperty("imageCount").GetInt32());
        Assert.Equal("hooked", payload.GetProperty("name").GetString());
        Assert.Equal(lora.GetProperty("triggerWord").GetString(), payload.GetProperty("triggerWord").GetString());
        Assert.Equal("u_9", payload.GetProperty("metadata").GetProperty("userId").GetString());
        Assert.Equal(lora.GetProperty("completedAt").GetString(), payload.GetProperty("completedAt").GetString());

        JsonElement log;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        do { log = await Server.GetJsonAsync($"/v2/loras/{id}/webhook-deliveries"); }
        while (log.GetProperty("items").GetArrayLength() < 2 && DateTime.UtcNow < deadline);
        var attempts = log.GetProperty("items").EnumerateArray().ToList();
        Assert.Equal(2, attempts.Count);
        Assert.Equal(200, attempts[0].GetProperty("statusCode").GetInt32());
        Assert.True(attempts[0].GetProperty("succeeded").GetBoolean());
        Assert.Equal(500, attempts[1].GetProperty("statusCode").GetInt32());
        Assert.False(attempts[1].GetProperty("succeeded").GetBoolean());
    }

    [Fact]
    public async Task Sends_the_failed_event_on_cancel_only_when_subscribed()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        async Task<string> Create(string events, int seed)
        {
            var r = await Server.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15, seed), new Dictionary<string, string>
            {
                ["webhookUrl"] = receiver.Url, ["webhookEvents"] = events, ["steps"] = "3000",
            }));
            Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
            return (await r.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        }
        var quiet = await Create("completed", 800);
        var loud = await Create("failed", 830);
        await Server.Client.PostAsync($"/v2/loras/{quiet}/cancel", null);
        await Server.Client.PostAsync($"/v2/loras/{loud}/cancel", null);

        var deliveries = await receiver.WaitForAsync(1);
        await Task.Delay(500);
        Assert.Single(receiver.Deliveries);
        Verifier.Verify(deliveries[0].Body, deliveries[0].Headers);
        var payload = JsonDocument.Parse(deliveries[0].Body).RootElement;
        Assert.Equal("failed", payload.GetProperty("event").GetString());
        Assert.Equal(loud, payload.GetProperty("id").GetString());
        Assert.Equal("FAILED", payload.GetProperty("status").GetString());
        Assert.Equal("canceled", payload.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task Refuses_webhook_urls_naming_a_private_address_through_an_ipv6_form()
    {
        // The shared server allows private targets (its receiver is on loopback); this one does not, as in production.
        await using var strict = await LikenessServer.StartAsync(new Dictionary<string, string?>
        {
            ["Likeness:Role"] = "api", ["Likeness:AllowPrivateWebhooks"] = "false",
        });
        var photos = TestImages.Pngs(15, 720);
        foreach (var host in new[] { "[::127.0.0.1]", "[::ffff:127.0.0.1]", "[64:ff9b::7f00:1]", "[64:ff9b::a9fe:a9fe]", "[2002:7f00:1::1]", "[2002:c0a8:101::1]" })
        {
            var response = await strict.Client.PostAsync("/v2/loras", LoraForms.Create(photos, new Dictionary<string, string> { ["webhookUrl"] = $"https://{host}/hook" }));
            await Problem.AssertAsync(response, 400, "webhook_url_not_allowed");
        }
        Assert.Equal(0, await strict.WithDb(db => db.Loras.CountAsync()));
    }
}
