using System.Collections.Concurrent;
using System.Data;
using System.Globalization;
using Microsoft.Data.Sqlite;

namespace Likeness.Core.Data;

/// <summary>An active key as authentication needs it: whose it is, and its stored hash for the constant-time compare.</summary>
public sealed record ActiveKey(string Id, string TeamId, byte[] KeyHash);

/// <summary>
/// The reads behind nearly every request — the API key, one LoRA, a page of LoRAs — as plain SQL on connections this
/// class keeps, with their commands prepared once. Issue #11's profile of <c>GET /v2/loras/{id}</c> through EF Core
/// (pooled contexts, compiled queries) still spent most of each request around the data rather than reading it:
/// leasing a context, opening and closing its connection (on SQLite EF registers its SQL functions at each open and
/// removes them at each close), parsing and preparing each statement again, and the command diagnostics. The SQL is
/// the one EF generates for the same LINQ on both providers (the tests compare every column with EF's answer).
/// Each read rents a <see cref="HotReadSession"/> — on SQLite a connection of its own that stays open, its statements
/// prepared once and its columns read directly (<see cref="SqliteHotReadSession"/>); on PostgreSQL a command on a
/// connection that goes back to Npgsql's pool after each read, the statements staying prepared on the physical
/// connections (<see cref="PostgresHotReadSession"/>).
/// </summary>
public sealed class HotReads : IDisposable
{
    /// <summary>
    /// The columns a LoRA's API record shows, the only ones these reads return (<see cref="ReadShownLora"/>): on SQLite
    /// a row's cost is nearly all per column (decoding, a call, a string), and the list reads up to a hundred rows.
    /// </summary>
    private const string LoraColumns = """
        "Id", "Name", "SubjectKind", "Gender", "Ethnicity", "Age", "Status", "ImageCount", "Steps", "LoraRank", "TriggerWord",
        "ProgressStep", "ProgressTotal", "EtaSeconds", "ErrorCode", "ErrorMessage", "MetadataJson", "Purged", "CreatedAt",
        "StartedAt", "TrainingStartedAt", "CompletedAt", "ArchivedAt"
        """;

    private const string KeySql = """
        SELECT "Id", "TeamId", "KeyHash" FROM "api_keys" WHERE "KeyHash" = @p0 AND "RevokedAt" IS NULL LIMIT 1
        """;

    private const string LoraSql = "SELECT " + LoraColumns + """
         FROM "loras" WHERE "Id" = @p0 AND "TeamId" = @p1 LIMIT 2
        """;

    /// <summary>The most rows a page read may ask for (the API's largest page, 100, and one more to know there is a next).</summary>
    private const int MaxPageRows = 101;

    /// <summary>Connections kept idle beyond this are closed: more would only outlive a burst.</summary>
    private static readonly int MaxIdle = Math.Max(8, 4 * Environment.ProcessorCount);

    private readonly Func<HotReadSession> _open;
    private readonly string[] _pageSql;
    private readonly ConcurrentBag<HotReadSession> _idle = [];
    private volatile bool _disposed;

    private HotReads(Func<HotReadSession> open, string pageLimit)
    {
        _open = open;
        _pageSql = [.. Enumerable.Range(0, 8).Select(shape => PageQuery(
            withStatus: (shape & 1) != 0, withArchived: (shape & 2) != 0, afterCursor: (shape & 4) != 0, pageLimit))];
    }

    /// <summary>
    /// On the database file that <paramref name="connectionString"/> (Microsoft.Data.Sqlite's form) names. The page's
    /// limit is a literal, the largest page, and the reader stops at the page's size: the planner of the SQLite that
    /// ships with the app (3.53) reads a bound LIMIT's value, which marks the statement to be compiled again whenever
    /// that parameter is bound — at every request, parsing the SQL anew each time. The rows come from the index in
    /// order, so those past the page are never read.
    /// </summary>
    public static HotReads ForSqlite(string connectionString)
    {
        var path = Path.GetFullPath(new SqliteConnectionStringBuilder(connectionString).DataSource);
        return new(() => new SqliteHotReadSession(path), MaxPageRows.ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>On PostgreSQL, whose server would otherwise send the rows past the page, the limit is bound (<c>@p4</c>).</summary>
    public static HotReads ForPostgres(string connectionString) => new(() => new PostgresHotReadSession(connectionString), "@p4");

    /// <summary>The unrevoked key with this SHA-256, or null (served by the unique index on <c>KeyHash</c>).</summary>
    public Task<ActiveKey?> ActiveKeyAsync(byte[] hash, CancellationToken ct) =>
        ReadAsync(KeySql, [hash], CommandBehavior.SingleRow, async rows =>
            await rows.NextAsync(ct) ? new ActiveKey(rows.GetString(0), rows.GetString(1), rows.GetBytes(2)) : null, ct);

    /// <summary>
    /// The team's LoRA with this id as its API record shows it (see <see cref="ReadShownLora"/>), or null when it is
    /// missing or another team's.
    /// </summary>
    public Task<Lora?> TeamLoraAsync(string id, string teamId, CancellationToken ct) =>
        ReadAsync(LoraSql, [id, teamId], CommandBehavior.Default, async rows => await rows.NextAsync(ct) ? ReadShownLora(rows, teamId) : null, ct);

    /// <summary>
    /// One page of the team's LoRAs, newest first (ties by id, descending), after the cursor's (<paramref name="afterAt"/>,
    /// <paramref name="afterId"/>) when <paramref name="afterId"/> is set; <paramref name="status"/> null for any status;
    /// ARCHIVED ones only when <paramref name="withArchived"/>. Each as its API record shows it (see <see cref="ReadShownLora"/>).
    /// </summary>
    public Task<List<Lora>> TeamLoraPageAsync(string teamId, string? status, bool withArchived, DateTime afterAt, string? afterId, int take,
        CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(take, MaxPageRows);
        var shape = (status is null ? 0 : 1) | (withArchived ? 2 : 0) | (afterId is null ? 0 : 4);
        // The timestamp as EF's converter writes it: UTC (bound only after a cursor).
        object?[] values = [teamId, status, afterId is null || afterAt.Kind == DateTimeKind.Utc ? afterAt : afterAt.ToUniversalTime(), afterId, take];
        return ReadAsync(_pageSql[shape], values, CommandBehavior.Default, async rows =>
        {
            var page = new List<Lora>(take);
            while (page.Count < take && await rows.NextAsync(ct)) page.Add(ReadShownLora(rows, teamId));
            return page;
        }, ct);
    }

    /// <summary>
    /// Runs <paramref name="sql"/> with <paramref name="values"/> as <c>@p0</c>… (null as SQL NULL) on a rented
    /// session and reads its rows; the session goes back after a success and is dropped after a failure.
    /// </summary>
    private async Task<T> ReadAsync<T>(string sql, object?[] values, CommandBehavior behavior, Func<IHotRows, Task<T>> read, CancellationToken ct)
    {
        var session = await RentAsync(ct);
        try
        {
            T result;
            await using (var rows = await session.ExecuteAsync(sql, values, behavior, ct)) result = await read(rows);
            Return(session);
            return result;
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>The page's SQL for one shape: with a status or not, archived ones or not, after a cursor or not.</summary>
    private static string PageQuery(bool withStatus, bool withArchived, bool afterCursor, string limit)
    {
        // Every shape is bound with all five parameters; a shape's SQL names only those it uses (both providers send no others).
        var where = "\"TeamId\" = @p0"
            + (withStatus ? " AND \"Status\" = @p1" : "")
            + (withArchived ? "" : " AND \"Status\" <> 'ARCHIVED'")
            + (afterCursor ? " AND (\"CreatedAt\" < @p2 OR (\"CreatedAt\" = @p2 AND \"Id\" < @p3))" : "");
        return $"SELECT {LoraColumns} FROM \"loras\" WHERE {where} ORDER BY \"CreatedAt\" DESC, \"Id\" DESC LIMIT {limit}";
    }

    /// <summary>
    /// The row of <see cref="LoraColumns"/> as a <see cref="Lora"/> of <paramref name="teamId"/>. What the API record
    /// does not show is not read, and is empty: the base model, loss, webhook, creator key and credits held — such a
    /// LoRA is for answering with (<c>LoraResponse</c>), never for a decision or a write.
    /// </summary>
    private static Lora ReadShownLora(IHotRows r, string teamId) => new()
    {
        Id = r.GetString(0),
        TeamId = teamId,
        BaseModel = "",
        WebhookEvents = "",
        CreatorKeyHash = [],
        Name = r.GetString(1),
        SubjectKind = r.GetString(2),
        Gender = NullableString(r, 3),
        Ethnicity = NullableString(r, 4),
        Age = NullableString(r, 5),
        Status = r.GetString(6),
        ImageCount = r.GetInt32(7),
        Steps = r.GetInt32(8),
        LoraRank = r.GetInt32(9),
        TriggerWord = r.GetString(10),
        ProgressStep = r.IsNull(11) ? null : r.GetInt32(11),
        ProgressTotal = r.IsNull(12) ? null : r.GetInt32(12),
        EtaSeconds = r.IsNull(13) ? null : r.GetInt32(13),
        ErrorCode = NullableString(r, 14),
        ErrorMessage = NullableString(r, 15),
        MetadataJson = NullableString(r, 16),
        Purged = r.GetBoolean(17),
        CreatedAt = r.GetUtc(18),
        StartedAt = NullableUtc(r, 19),
        TrainingStartedAt = NullableUtc(r, 20),
        CompletedAt = NullableUtc(r, 21),
        ArchivedAt = NullableUtc(r, 22),
    };

    private static string? NullableString(IHotRows r, int i) => r.IsNull(i) ? null : r.GetString(i);

    private static DateTime? NullableUtc(IHotRows r, int i) => r.IsNull(i) ? null : r.GetUtc(i);

    private async ValueTask<HotReadSession> RentAsync(CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_idle.TryTake(out var session)) session = _open();
        try
        {
            await session.OpenAsync(ct);
        }
        catch
        {
            session.Dispose();
            throw;
        }
        return session;
    }

    private void Return(HotReadSession session)
    {
        if (_disposed || _idle.Count >= MaxIdle)
        {
            session.Dispose();
            return;
        }
        session.Idle();
        _idle.Add(session);
    }

    public void Dispose()
    {
        _disposed = true;
        while (_idle.TryTake(out var session)) session.Dispose();
    }
}
