using System.Net;
using Likeness.Core.Webhooks;
using Likeness.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using StandardWebhooks;

namespace Likeness.Tests.Webhooks;

public sealed class WebhookDeliveryTests
{
    /// <summary>The worked example the README quotes.</summary>
    public const string ExampleKey = "lk_example-key-do-not-use";
    public const string ExampleId = "msg_2f4k9v0c8w1r6t3y5n7b2m4x6z";
    public const long ExampleTimestamp = 1777113731;
    public const string ExampleBody = """{"event":"completed","id":"lora_01h2xcejqtf2nbrexx3vqjhp41","status":"READY"}""";

    [Fact]
    public void Signs_the_worked_example_as_standard_webhooks_verifies_it()
    {
        var secret = WebhookSigner.SecretFromApiKey(ExampleKey);
        var signature = WebhookSigner.Sign(secret, ExampleId, ExampleTimestamp, ExampleBody);
        Assert.Equal(ExampleSignature, signature);
        Assert.Equal(ExampleWhsec, WebhookSigner.ToWhsec(secret));

        var headers = new Microsoft.AspNetCore.Http.HeaderDictionary
        {
            ["webhook-id"] = ExampleId,
            ["webhook-timestamp"] = DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(),
        };
        headers["webhook-signature"] = WebhookSigner.Sign(secret, ExampleId, long.Parse(headers["webhook-timestamp"]!), ExampleBody);
        new StandardWebhook(WebhookSigner.ToWhsec(secret)).Verify(ExampleBody, headers);
    }

    // Computed independently (Python hmac/hashlib) from the example above; pinned here and in the README.
    public const string ExampleWhsec = "whsec_pbCEtsW+Hn8ef59pP+eOP+1vY4cIBJIijyiNEwVwXBc=";
    public const string ExampleSignature = "v1,YCMr8rU2pYTTOuC0Jdk/BEcGzM87PskDRCEtS+rr1o0=";

    [Theory]
    [InlineData("127.0.0.1")] [InlineData("10.1.2.3")] [InlineData("172.16.0.1")] [InlineData("172.31.255.255")] [InlineData("192.168.1.1")]
    [InlineData("169.254.169.254")] [InlineData("100.64.0.1")] [InlineData("0.0.0.0")] [InlineData("224.0.0.1")] [InlineData("255.255.255.255")]
    [InlineData("::1")] [InlineData("fc00::1")] [InlineData("fd12:3456::1")] [InlineData("fe80::1")] [InlineData("::ffff:127.0.0.1")] [InlineData("::ffff:10.0.0.1")]
    public void Refuses_non_public_addresses(string address) => Assert.False(WebhookTargetPolicy.IsPublic(IPAddress.Parse(address)));

    /// <summary>IPv6 forms that carry (and reach) a private IPv4 address are as private as it.</summary>
    [Theory]
    [InlineData("::127.0.0.1")] [InlineData("::10.0.0.1")] [InlineData("::ffff:0:127.0.0.1")] [InlineData("::ffff:169.254.169.254")]
    [InlineData("64:ff9b::7f00:1")] [InlineData("64:ff9b::192.168.1.1")] [InlineData("64:ff9b::a9fe:a9fe")] [InlineData("64:ff9b:1::808:808")]
    [InlineData("2002:7f00:1::")] [InlineData("2002:c0a8:101::1")] [InlineData("2002:a9fe:a9fe:1::1")] [InlineData("2002:a00:1::")]
    public void Refuses_ipv6_forms_embedding_a_non_public_ipv4_address(string address) =>
        Assert.False(WebhookTargetPolicy.IsPublic(IPAddress.Parse(address)));

    [Theory]
    [InlineData("64:ff9b::808:808")] [InlineData("2002:808:808::1")] [InlineData("::ffff:8.8.8.8")]
    public void Allows_ipv6_forms_embedding_a_public_ipv4_address(string address) =>
        Assert.True(WebhookTargetPolicy.IsPublic(IPAddress.Parse(address)));

    [Theory]
    [InlineData("8.8.8.8")] [InlineData("172.32.0.1")] [InlineData("100.128.0.1")] [InlineData("2606:4700::1111")]
    public void Allows_public_addresses(string address) => Assert.True(WebhookTargetPolicy.IsPublic(IPAddress.Parse(address)));

    [Theory]
    [InlineData("http://example.com/hook", false)]
    [InlineData("https://user:pw@example.com/hook", false)]
    [InlineData("https://localhost/hook", false)]
    [InlineData("https://127.0.0.1/hook", false)]
    [InlineData("https://[::1]/hook", false)]
    [InlineData("https://169.254.169.254/latest", false)]
    [InlineData("https://[::127.0.0.1]/hook", false)]
    [InlineData("https://[::ffff:127.0.0.1]/hook", false)]
    [InlineData("https://[64:ff9b::7f00:1]/hook", false)]
    [InlineData("https://[2002:7f00:1::1]/hook", false)]
    [InlineData("not a url", false)]
    [InlineData("https://93.184.216.34/hook", true)]
    public async Task Validates_urls_at_creation(string url, bool allowed)
    {
        var policy = new WebhookTargetPolicy(Options.Create(new WebhookOptions { AllowPrivate = false }));
        Assert.Equal(allowed, (await policy.ValidateAsync(url, default)).Allowed);
    }

    [Fact]
    public async Task Allows_http_and_loopback_only_when_private_targets_are_allowed()
    {
        var open = new WebhookTargetPolicy(Options.Create(new WebhookOptions { AllowPrivate = true }));
        Assert.True((await open.ValidateAsync("http://127.0.0.1:9/hook", default)).Allowed);
        Assert.False((await open.ValidateAsync("ftp://127.0.0.1/hook", default)).Allowed);
    }

    private static WebhookDeliverer Deliverer(bool allowPrivate, TimeSpan? timeout = null)
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Likeness:Webhooks:AllowPrivate"] = allowPrivate ? "true" : "false",
            ["Likeness:Webhooks:Timeout"] = (timeout ?? TimeSpan.FromSeconds(10)).ToString(),
        }).Build();
        var services = new ServiceCollection().AddSingleton<IConfiguration>(config).AddSingleton(TimeProvider.System).AddLikenessWebhooks(config);
        return services.BuildServiceProvider().GetRequiredService<WebhookDeliverer>();
    }

    [Fact]
    public async Task Reports_success_failure_gone_and_redirect_without_following_it()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var deliverer = Deliverer(allowPrivate: true);
        var secret = WebhookSigner.SecretFromApiKey("k");

        receiver.Script(500, 410, 302);
        var failed = await deliverer.DeliverAsync(receiver.Url, "msg_1", "{}", secret, default);
        Assert.Equal((500, false, false), (failed.StatusCode, failed.Succeeded, failed.StopRetrying));
        var gone = await deliverer.DeliverAsync(receiver.Url, "msg_1", "{}", secret, default);
        Assert.Equal((410, false, true), (gone.StatusCode, gone.Succeeded, gone.StopRetrying));
        var redirect = await deliverer.DeliverAsync(receiver.Url, "msg_1", "{}", secret, default);
        Assert.Equal((302, false), (redirect.StatusCode, redirect.Succeeded));
        Assert.Contains("redirect", redirect.Error);
        var ok = await deliverer.DeliverAsync(receiver.Url, "msg_1", "{}", secret, default);
        Assert.True(ok.Succeeded);
        Assert.Equal(4, receiver.Deliveries.Count); // the redirect was not followed
        Assert.All(receiver.Deliveries, d => Assert.Equal("msg_1", d.Headers["webhook-id"].ToString()));
    }

    [Fact]
    public async Task A_connection_failure_is_reported_not_thrown()
    {
        var result = await Deliverer(allowPrivate: true).DeliverAsync($"http://127.0.0.1:{LikenessServer.FreePort()}/hook", "msg_2", "{}", [1, 2], default);
        Assert.False(result.Succeeded);
        Assert.Null(result.StatusCode);
        Assert.False(result.StopRetrying);
    }

    /// <summary>Refused by the policy (final), not merely unreachable (retried): the forms never get a socket.</summary>
    [Theory]
    [InlineData("::127.0.0.1")] [InlineData("::ffff:127.0.0.1")] [InlineData("64:ff9b::7f00:1")] [InlineData("2002:7f00:1::1")]
    public async Task The_connect_time_guard_refuses_ipv6_forms_of_loopback(string address)
    {
        var result = await Deliverer(allowPrivate: false).DeliverAsync($"https://[{address}]:{LikenessServer.FreePort()}/hook", "msg_4", "{}", [1, 2], default);
        Assert.False(result.Succeeded);
        Assert.True(result.StopRetrying, result.Error);
        Assert.Contains("non-public", result.Error);
    }

    [Fact]
    public async Task The_connect_time_guard_refuses_loopback_when_private_targets_are_not_allowed()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var result = await Deliverer(allowPrivate: false).DeliverAsync(receiver.Url, "msg_3", "{}", [1, 2], default);
        Assert.False(result.Succeeded);
        Assert.True(result.StopRetrying);
        Assert.Empty(receiver.Deliveries);
    }

    [Fact]
    public void The_retry_schedule_is_the_documented_one_then_stops()
    {
        var schedule = new WebhookRetrySchedule(Options.Create(new WebhookOptions()));
        var now = DateTimeOffset.UnixEpoch;
        Assert.Equal(now.AddSeconds(5), schedule.NextAttemptAt(1, now));
        Assert.Equal(now.AddMinutes(5), schedule.NextAttemptAt(2, now));
        Assert.Equal(now.AddHours(24), schedule.NextAttemptAt(9, now));
        Assert.Null(schedule.NextAttemptAt(10, now));
    }
}
