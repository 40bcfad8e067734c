using Likeness.Core.Data;
using Microsoft.EntityFrameworkCore;

namespace Likeness.Core.Credits;

/// <summary>
/// Every change of a team's balance goes through here, inside the caller's transaction: the balance column
/// and a ledger row change together, so the balance always equals the sum of the ledger.
/// </summary>
public static class CreditLedger
{
    /// <summary>
    /// Takes the team's write lock for the rest of the transaction. A no-op UPDATE locks the row on PostgreSQL
    /// and takes the database write lock on SQLite, so cap checks and charges that follow are serialised per team
    /// across processes without a provider-specific statement.
    /// </summary>
    public static async Task<bool> LockTeamAsync(LikenessDb db, string teamId, CancellationToken ct) =>
        await db.Teams.Where(t => t.Id == teamId)
            .ExecuteUpdateAsync(s => s.SetProperty(t => t.Credits, t => t.Credits), ct) == 1;

    /// <summary>Charges <paramref name="amount"/> (positive) if the balance covers it; returns false and changes nothing otherwise.</summary>
    public static async Task<bool> TryChargeAsync(LikenessDb db, string teamId, long amount, string reason,
        DateTime now, CancellationToken ct, string? loraId = null, string? generationId = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(amount);
        var changed = await db.Teams.Where(t => t.Id == teamId && t.Credits >= amount)
            .ExecuteUpdateAsync(s => s.SetProperty(t => t.Credits, t => t.Credits - amount), ct);
        if (changed == 0) return false;
        await AppendAsync(db, teamId, -amount, reason, now, loraId, generationId, ct);
        return true;
    }

    /// <summary>Adds credits (grants and refunds).</summary>
    public static async Task CreditAsync(LikenessDb db, string teamId, long amount, string reason,
        DateTime now, CancellationToken ct, string? loraId = null, string? generationId = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(amount);
        var changed = await db.Teams.Where(t => t.Id == teamId)
            .ExecuteUpdateAsync(s => s.SetProperty(t => t.Credits, t => t.Credits + amount), ct);
        if (changed == 0) throw new InvalidOperationException($"Team {teamId} does not exist.");
        await AppendAsync(db, teamId, amount, reason, now, loraId, generationId, ct);
    }

    private static async Task AppendAsync(LikenessDb db, string teamId, long amount, string reason, DateTime now,
        string? loraId, string? generationId, CancellationToken ct)
    {
        var balance = await db.Teams.Where(t => t.Id == teamId).Select(t => t.Credits).SingleAsync(ct);
        db.Ledger.Add(new LedgerEntry
        {
            TeamId = teamId, Amount = amount, BalanceAfter = balance, Reason = reason,
            LoraId = loraId, GenerationId = generationId, CreatedAt = now,
        });
        await db.SaveChangesAsync(ct);
    }
}
