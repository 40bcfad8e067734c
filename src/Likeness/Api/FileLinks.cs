using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Likeness.Core.Data;
using Likeness.Hosting;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;

namespace Likeness.Api;

/// <summary>
/// Signed, expiring links to stored files, usable without the API key. The HMAC secret lives in the database,
/// so every node signs and checks alike and links survive restarts.
/// </summary>
public sealed class FileLinks(IOptions<LikenessOptions> options, TimeProvider clock)
{
    public const string SecretName = "file-links";
    private byte[]? _secret;

    public async Task LoadSecretAsync(LikenessDb db, CancellationToken ct)
    {
        var row = await db.ServerSecrets.AsNoTracking().SingleOrDefaultAsync(s => s.Name == SecretName, ct);
        if (row is null)
        {
            // Nodes starting together may all find none: the first insert wins and the others change nothing (a
            // unique-key failure instead would be handled, but EF Core logs it as an error with its stack trace).
            var value = RandomNumberGenerator.GetBytes(32);
            await db.Database.ExecuteSqlAsync(
                $"INSERT INTO server_secrets (\"Name\", \"Value\") VALUES ({SecretName}, {value}) ON CONFLICT DO NOTHING", ct);
            row = await db.ServerSecrets.AsNoTracking().SingleAsync(s => s.Name == SecretName, ct);
        }
        _secret = row.Value;
    }

    public string Url(string blobKey) => Url(blobKey, clock.GetUtcNow().Add(options.Value.Files.LinkLifetime));

    internal string Url(string blobKey, DateTimeOffset expires)
    {
        var exp = expires.ToUnixTimeSeconds();
        return $"{options.Value.PublicBaseUrl}/v2/files/{blobKey}?exp={exp.ToString(CultureInfo.InvariantCulture)}&sig={Sign(blobKey, exp)}";
    }

    public enum Verdict { Valid, Invalid, Expired }

    public Verdict Check(string blobKey, string? exp, string? sig)
    {
        if (!long.TryParse(exp, NumberStyles.None, CultureInfo.InvariantCulture, out var expires) || string.IsNullOrEmpty(sig)) return Verdict.Invalid;
        byte[] given;
        try { given = WebEncoders.Base64UrlDecode(sig); } catch (FormatException) { return Verdict.Invalid; }
        var expected = WebEncoders.Base64UrlDecode(Sign(blobKey, expires));
        if (!CryptographicOperations.FixedTimeEquals(given, expected)) return Verdict.Invalid;
        return clock.GetUtcNow().ToUnixTimeSeconds() > expires ? Verdict.Expired : Verdict.Valid;
    }

    private string Sign(string blobKey, long exp)
    {
        var secret = _secret ?? throw new InvalidOperationException("The file-link secret was not loaded.");
        var mac = HMACSHA256.HashData(secret, Encoding.UTF8.GetBytes($"{blobKey}\n{exp.ToString(CultureInfo.InvariantCulture)}"));
        return WebEncoders.Base64UrlEncode(mac);
    }
}
