using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Options;

namespace Likeness.Core.Webhooks;

public sealed record WebhookVerdict(bool Allowed, string? Reason)
{
    public static readonly WebhookVerdict Ok = new(true, null);
    public static WebhookVerdict No(string reason) => new(false, reason);
}

/// <summary>
/// Which webhook targets may be called: https only, and never an address on loopback, a private network,
/// link-local (cloud metadata included), CGNAT, multicast or "this network", nor an IPv6 form that embeds one
/// (mapped, compatible, NAT64, 6to4) — unless AllowPrivate is on. Checked
/// when the LoRA is created and again at connect time, since DNS can change in between.
/// </summary>
public sealed class WebhookTargetPolicy(IOptions<WebhookOptions> options)
{
    private static readonly string[] BlockedNames = ["localhost", "metadata.google.internal", "metadata"];

    public bool AllowPrivate => options.Value.AllowPrivate;

    public async Task<WebhookVerdict> ValidateAsync(string url, CancellationToken ct)
    {
        var form = CheckUrl(url, out var uri);
        if (!form.Allowed) return form;
        if (AllowPrivate) return WebhookVerdict.Ok;
        IPAddress[] addresses;
        try
        {
            addresses = IPAddress.TryParse(uri!.IdnHost, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(uri.IdnHost, ct);
        }
        catch (SocketException) { return WebhookVerdict.No($"The webhook host '{uri!.Host}' does not resolve."); }
        if (addresses.Length == 0) return WebhookVerdict.No($"The webhook host '{uri.Host}' does not resolve.");
        foreach (var address in addresses)
            if (!IsPublic(address)) return WebhookVerdict.No($"The webhook host '{uri.Host}' resolves to a non-public address ({address}).");
        return WebhookVerdict.Ok;
    }

    /// <summary>The URL's form alone: absolute, https (or http when private targets are allowed), no credentials.</summary>
    public WebhookVerdict CheckUrl(string url, out Uri? uri)
    {
        if (!Uri.TryCreate(url, UriKind.Absolute, out uri)) return WebhookVerdict.No("The webhook URL is not an absolute URL.");
        var schemeOk = uri.Scheme == Uri.UriSchemeHttps || (AllowPrivate && uri.Scheme == Uri.UriSchemeHttp);
        if (!schemeOk) return WebhookVerdict.No(AllowPrivate ? "The webhook URL must use http or https." : "The webhook URL must use https.");
        if (!string.IsNullOrEmpty(uri.UserInfo)) return WebhookVerdict.No("The webhook URL must not carry credentials.");
        if (!AllowPrivate && BlockedNames.Contains(uri.IdnHost.TrimEnd('.').ToLowerInvariant()))
            return WebhookVerdict.No($"The webhook host '{uri.Host}' is not allowed.");
        return WebhookVerdict.Ok;
    }

    public bool IsAllowedAddress(IPAddress address) => AllowPrivate || IsPublic(address);

    public static bool IsPublic(IPAddress address)
    {
        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            var b = address.GetAddressBytes();
            if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B && b[4] == 0x00 && b[5] == 0x01)
                return false; // local-use NAT64 64:ff9b:1::/48 (RFC 8215): a site's own translator, embedding anywhere
            if (EmbeddedIPv4(b) is { } inner) address = inner;
        }
        if (IPAddress.IsLoopback(address)) return false;
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            var b = address.GetAddressBytes();
            return !(b[0] == 0 || b[0] == 10 || b[0] == 127 ||
                     (b[0] == 100 && b[1] >= 64 && b[1] <= 127) ||   // CGNAT 100.64/10
                     (b[0] == 169 && b[1] == 254) ||                 // link-local, cloud metadata
                     (b[0] == 172 && b[1] >= 16 && b[1] <= 31) ||
                     (b[0] == 192 && b[1] == 168) ||
                     (b[0] == 192 && b[1] == 0 && b[2] == 0) ||      // IETF protocol assignments
                     (b[0] == 198 && (b[1] == 18 || b[1] == 19)) ||  // benchmarking
                     b[0] >= 224);                                   // multicast, reserved, broadcast
        }
        if (address.AddressFamily == AddressFamily.InterNetworkV6)
        {
            if (address.Equals(IPAddress.IPv6Any) || address.IsIPv6LinkLocal || address.IsIPv6SiteLocal || address.IsIPv6Multicast) return false;
            var b = address.GetAddressBytes();
            if ((b[0] & 0xFE) == 0xFC) return false; // unique local fc00::/7
            if (address.IsIPv6Teredo) return false;
            return true;
        }
        return false;
    }

    /// <summary>
    /// The IPv4 address that an IPv6 form carries and reaches: mapped <c>::ffff:0:0/96</c>, compatible <c>::/96</c>,
    /// translated <c>::ffff:0:0:0/96</c>, NAT64 <c>64:ff9b::/96</c> (the last 32 bits) and 6to4 <c>2002::/16</c>
    /// (bits 16–47). Such an address is as public as the IPv4 one inside it, so the IPv4 rules judge it.
    /// </summary>
    private static IPAddress? EmbeddedIPv4(byte[] b)
    {
        if (b[0] == 0x20 && b[1] == 0x02) return new IPAddress(b.AsSpan(2, 4));
        var nat64 = b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xFF && b[3] == 0x9B && b.AsSpan(4, 8).IndexOfAnyExcept((byte)0) < 0;
        var zeroPrefix = b.AsSpan(0, 8).IndexOfAnyExcept((byte)0) < 0;
        var compatible = zeroPrefix && b.AsSpan(8, 4).IndexOfAnyExcept((byte)0) < 0;
        var mapped = zeroPrefix && b[8] == 0 && b[9] == 0 && b[10] == 0xFF && b[11] == 0xFF;
        var translated = zeroPrefix && b[8] == 0xFF && b[9] == 0xFF && b[10] == 0 && b[11] == 0;
        return nat64 || compatible || mapped || translated ? new IPAddress(b.AsSpan(12, 4)) : null;
    }
}
