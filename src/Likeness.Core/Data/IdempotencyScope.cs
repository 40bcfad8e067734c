using Microsoft.EntityFrameworkCore;

namespace Likeness.Core.Data;

/// <summary>
/// The Idempotency-Key of the request being served, if it has one (set by the API). Creation code records the
/// resource it makes on the key's row inside its own transaction, so a crash or a dropped connection after the commit
/// can never let a retry with the same key create and charge a second one.
/// </summary>
public sealed class IdempotencyScope
{
    public (string TeamId, string Key)? Current { get; set; }

    /// <summary>Within the caller's open transaction: the key's row names <paramref name="resourceId"/>.</summary>
    public async Task RecordAsync(LikenessDb db, string resourceId, CancellationToken ct)
    {
        if (Current is not { } c) return;
        await db.IdempotencyRecords.Where(r => r.TeamId == c.TeamId && r.Key == c.Key)
            .ExecuteUpdateAsync(s => s.SetProperty(r => r.ResourceId, resourceId), ct);
    }
}
