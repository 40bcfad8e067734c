using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Likeness.Core.Webhooks;

/// <summary>
/// Standard Webhooks signatures. The secret is the 32-byte SHA-256 of the API key that created the LoRA — the
/// service keeps only that hash, and the receiver derives it from the key it holds.
/// </summary>
public static class WebhookSigner
{
    public static byte[] SecretFromApiKey(string apiKey) => Common.Hashing.ApiKeyHash(apiKey);

    /// <summary>The form Standard Webhooks libraries take: "whsec_" + base64(secret).</summary>
    public static string ToWhsec(byte[] secret) => "whsec_" + Convert.ToBase64String(secret);

    /// <summary>"v1," + base64(HMAC-SHA256(secret, "&lt;id&gt;.&lt;timestamp&gt;.&lt;body&gt;")).</summary>
    public static string Sign(byte[] secret, string webhookId, long timestamp, string body)
    {
        var content = Encoding.UTF8.GetBytes($"{webhookId}.{timestamp.ToString(CultureInfo.InvariantCulture)}.{body}");
        return "v1," + Convert.ToBase64String(HMACSHA256.HashData(secret, content));
    }
}
