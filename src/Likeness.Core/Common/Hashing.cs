using System.Security.Cryptography;
using System.Text;

namespace Likeness.Core.Common;

public static class Hashing
{
    /// <summary>SHA-256 of the key's UTF-8 bytes: how API keys are stored, and the webhook signing secret.</summary>
    public static byte[] ApiKeyHash(string apiKey) => SHA256.HashData(Encoding.UTF8.GetBytes(apiKey));
}
