using System.Security.Cryptography;
using Likeness.Core.Common;
using Likeness.Core.Credits;
using Likeness.Core.Data;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.EntityFrameworkCore;

namespace Likeness.Core.Teams;

/// <summary>Operator actions behind the CLI verbs: teams, keys, grants.</summary>
public static class TeamAdmin
{
    /// <summary>A new key: "lk_" + 256 random bits. Only its SHA-256 is stored.</summary>
    public static string NewApiKey() => "lk_" + WebEncoders.Base64UrlEncode(RandomNumberGenerator.GetBytes(32));

    public static async Task<(Team Team, string ApiKey)> CreateTeamAsync(LikenessDb db, string name, long credits,
        int maxConcurrentTrainings, TimeProvider clock, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Length > 100) throw new ArgumentException("A team name is 1–100 characters.");
        if (credits < 0) throw new ArgumentException("Credits cannot be negative.");
        if (maxConcurrentTrainings < 1) throw new ArgumentException("--max-concurrent-trainings must be at least 1.");
        if (await db.Teams.AnyAsync(t => t.Name == name, ct)) throw new ArgumentException($"A team named '{name}' already exists.");
        var now = clock.GetUtcNow().UtcDateTime;
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        var team = new Team { Id = Ids.NewTeamId(), Name = name, Credits = 0, MaxConcurrentTrainings = maxConcurrentTrainings, CreatedAt = now };
        db.Teams.Add(team);
        await db.SaveChangesAsync(ct);
        if (credits > 0) await CreditLedger.CreditAsync(db, team.Id, credits, LedgerReasons.Grant, now, ct);
        var key = AddKey(db, team.Id, now);
        await db.SaveChangesAsync(ct);
        await tx.CommitAsync(ct);
        team.Credits = credits;
        return (team, key);
    }

    public static async Task<(Team Team, string ApiKey)> CreateKeyAsync(LikenessDb db, string teamIdOrName, TimeProvider clock, CancellationToken ct)
    {
        var team = await FindTeamAsync(db, teamIdOrName, ct);
        var key = AddKey(db, team.Id, clock.GetUtcNow().UtcDateTime);
        await db.SaveChangesAsync(ct);
        return (team, key);
    }

    /// <summary>
    /// Revokes by the key itself or its id (key_…). Returns false when no active key matched. This process's
    /// <see cref="ApiKeyCache"/>s forget the key at once; other processes' within <see cref="ApiKeyCache.Lifetime"/>.
    /// </summary>
    public static async Task<bool> RevokeKeyAsync(LikenessDb db, string keyOrId, TimeProvider clock, CancellationToken ct)
    {
        var now = clock.GetUtcNow().UtcDateTime;
        var hash = Hashing.ApiKeyHash(keyOrId);
        var revoked = await db.ApiKeys.Where(k => (k.Id == keyOrId || k.KeyHash == hash) && k.RevokedAt == null)
            .ExecuteUpdateAsync(s => s.SetProperty(k => k.RevokedAt, now), ct) > 0;
        // After the update, so that a request reading the key meanwhile either sees the row revoked or is evicted.
        ApiKeyCache.EvictEverywhere(keyOrId, hash);
        return revoked;
    }

    public static async Task<Team> GrantAsync(LikenessDb db, string teamIdOrName, long amount, TimeProvider clock, CancellationToken ct)
    {
        if (amount <= 0) throw new ArgumentException("--amount must be a positive number of credits.");
        var team = await FindTeamAsync(db, teamIdOrName, ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await CreditLedger.CreditAsync(db, team.Id, amount, LedgerReasons.Grant, clock.GetUtcNow().UtcDateTime, ct);
        await tx.CommitAsync(ct);
        return await db.Teams.AsNoTracking().SingleAsync(t => t.Id == team.Id, ct);
    }

    public static async Task<Team> FindTeamAsync(LikenessDb db, string teamIdOrName, CancellationToken ct) =>
        await db.Teams.AsNoTracking().SingleOrDefaultAsync(t => t.Id == teamIdOrName || t.Name == teamIdOrName, ct)
        ?? throw new ArgumentException($"No team has the id or name '{teamIdOrName}'.");

    private static string AddKey(LikenessDb db, string teamId, DateTime now)
    {
        var key = NewApiKey();
        db.ApiKeys.Add(new ApiKey { Id = Ids.NewKeyId(), TeamId = teamId, KeyHash = Hashing.ApiKeyHash(key), Prefix = key[..7], CreatedAt = now });
        return key;
    }
}
