using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Likeness.Core.Webhooks;

public static class WebhookServices
{
    /// <summary>
    /// The webhook HTTP client: no redirects, no cookies, a timeout, and a connect callback that resolves the host
    /// itself and connects only to an address the policy allows — so a name that was public at creation and points
    /// inside the network now (DNS rebinding) is still refused.
    /// </summary>
    public static IServiceCollection AddLikenessWebhooks(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<WebhookOptions>().BindConfiguration(WebhookOptions.Section)
            .Configure(o => o.AllowPrivate |= configuration.GetValue<bool>("Likeness:AllowPrivateWebhooks"));
        services.AddSingleton<WebhookTargetPolicy>();
        services.AddSingleton<WebhookRetrySchedule>();
        services.AddSingleton<WebhookDeliverer>();
        services.AddHttpClient(WebhookDeliverer.ClientName, (sp, client) =>
            {
                client.Timeout = sp.GetRequiredService<IOptions<WebhookOptions>>().Value.Timeout;
                client.DefaultRequestHeaders.UserAgent.ParseAdd("Likeness-Webhooks/1.0");
            })
            .ConfigurePrimaryHttpMessageHandler(sp =>
            {
                var policy = sp.GetRequiredService<WebhookTargetPolicy>();
                return new SocketsHttpHandler
                {
                    AllowAutoRedirect = false,
                    UseCookies = false,
                    UseProxy = false,
                    PooledConnectionLifetime = TimeSpan.FromMinutes(2),
                    ConnectCallback = (context, ct) => ConnectAsync(policy, context, ct),
                };
            });
        return services;
    }

    private static async ValueTask<Stream> ConnectAsync(WebhookTargetPolicy policy, SocketsHttpConnectionContext context, CancellationToken ct)
    {
        var host = context.DnsEndPoint.Host;
        var addresses = IPAddress.TryParse(host, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(host, ct);
        var allowed = addresses.Where(policy.IsAllowedAddress).ToArray();
        if (allowed.Length == 0)
            throw new WebhookTargetRefusedException($"The webhook host '{host}' resolves only to non-public addresses ({string.Join(", ", addresses.Select(a => a.ToString()))}).");
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(allowed, context.DnsEndPoint.Port, ct);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
