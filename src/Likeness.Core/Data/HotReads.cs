using System.Collections.Concurrent;
using System.Data;
using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

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
/// On SQLite the connections stay open, so each statement is prepared once per connection; on PostgreSQL they go
/// back to Npgsql's pool after each read (a server's connections are a shared budget) and the statements stay
/// prepared on the physical connections.
/// </summary>
public sealed class HotReads : IDisposable
{
    private const string LoraColumns = """
        "Id", "TeamId", "Name", "SubjectKind", "Gender", "Ethnicity", "Age", "Status", "ImageCount", "Steps", "LoraRank",
        "BaseModel", "TriggerWord", "ProgressStep", "ProgressTotal", "EtaSeconds", "Loss", "ErrorCode", "ErrorMessage",
        "MetadataJson", "WebhookUrl", "WebhookEvents", "CreatorKeyHash", "CreditsHeld", "Purged", "CreatedAt", "StartedAt",
        "TrainingStartedAt", "CompletedAt", "ArchivedAt"
        """;

    private const string KeySql = """
        SELECT "Id", "TeamId", "KeyHash" FROM "api_keys" WHERE "KeyHash" = @p0 AND "RevokedAt" IS NULL LIMIT 1
        """;

    private const string LoraSql = "SELECT " + LoraColumns + """
         FROM "loras" WHERE "Id" = @p0 AND "TeamId" = @p1 LIMIT 2
        """;

    /// <summary>The page's SQL for each shape: with a status or not, archived ones or not, after a cursor or not.</summary>
    private static readonly string[] PageSql = [.. Enumerable.Range(0, 8).Select(shape => PageQuery(
        withStatus: (shape & 1) != 0, withArchived: (shape & 2) != 0, afterCursor: (shape & 4) != 0))];

    /// <summary>Connections kept idle beyond this are closed: more would only outlive a burst.</summary>
    private static readonly int MaxIdle = Math.Max(8, 4 * Environment.ProcessorCount);

    private readonly Func<DbConnection> _connect;
    private readonly bool _sqlite;
    private readonly ConcurrentBag<Session> _idle = [];
    private volatile bool _disposed;

    private HotReads(Func<DbConnection> connect, bool sqlite)
    {
        _connect = connect;
        _sqlite = sqlite;
    }

    public static HotReads ForSqlite(string connectionString) => new(() => new SqliteConnection(connectionString), sqlite: true);

    public static HotReads ForPostgres(string connectionString) => new(() => new NpgsqlConnection(connectionString), sqlite: false);

    /// <summary>The unrevoked key with this SHA-256, or null (served by the unique index on <c>KeyHash</c>).</summary>
    public Task<ActiveKey?> ActiveKeyAsync(byte[] hash, CancellationToken ct) =>
        ReadAsync(KeySql, [hash], CommandBehavior.SingleRow, async reader =>
            await reader.ReadAsync(ct) ? new ActiveKey(reader.GetString(0), reader.GetString(1), reader.GetFieldValue<byte[]>(2)) : null, ct);

    /// <summary>The team's LoRA with this id, or null when it is missing or another team's.</summary>
    public Task<Lora?> TeamLoraAsync(string id, string teamId, CancellationToken ct) =>
        ReadAsync(LoraSql, [id, teamId], CommandBehavior.Default, async reader => await reader.ReadAsync(ct) ? ReadLora(reader) : null, ct);

    /// <summary>
    /// One page of the team's LoRAs, newest first (ties by id, descending), after the cursor's (<paramref name="afterAt"/>,
    /// <paramref name="afterId"/>) when <paramref name="afterId"/> is set; <paramref name="status"/> null for any status;
    /// ARCHIVED ones only when <paramref name="withArchived"/>.
    /// </summary>
    public Task<List<Lora>> TeamLoraPageAsync(string teamId, string? status, bool withArchived, DateTime afterAt, string? afterId, int take,
        CancellationToken ct)
    {
        var shape = (status is null ? 0 : 1) | (withArchived ? 2 : 0) | (afterId is null ? 0 : 4);
        // The timestamp as EF's converter writes it: UTC.
        object?[] values = [teamId, status, afterAt.Kind == DateTimeKind.Utc ? afterAt : afterAt.ToUniversalTime(), afterId, take];
        return ReadAsync(PageSql[shape], values, CommandBehavior.Default, async reader =>
        {
            var page = new List<Lora>(take);
            while (await reader.ReadAsync(ct)) page.Add(ReadLora(reader));
            return page;
        }, ct);
    }

    /// <summary>
    /// Runs <paramref name="sql"/> with <paramref name="values"/> as <c>@p0</c>… (null as SQL NULL) on a rented
    /// connection and reads its result; the connection goes back after a success and is dropped after a failure.
    /// </summary>
    private async Task<T> ReadAsync<T>(string sql, object?[] values, CommandBehavior behavior, Func<DbDataReader, Task<T>> read, CancellationToken ct)
    {
        var session = await RentAsync(ct);
        try
        {
            var command = session.Command(sql, values.Length);
            for (var i = 0; i < values.Length; i++) command.Parameters[i].Value = values[i] ?? DBNull.Value;
            T result;
            await using (var reader = await ExecuteAsync(command, behavior, ct)) result = await read(reader);
            Return(session);
            return result;
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    private static string PageQuery(bool withStatus, bool withArchived, bool afterCursor)
    {
        // Every shape is bound with all five parameters; a shape's SQL names only those it uses (both providers send no others).
        var where = "\"TeamId\" = @p0"
            + (withStatus ? " AND \"Status\" = @p1" : "")
            + (withArchived ? "" : " AND \"Status\" <> 'ARCHIVED'")
            + (afterCursor ? " AND (\"CreatedAt\" < @p2 OR (\"CreatedAt\" = @p2 AND \"Id\" < @p3))" : "");
        return $"SELECT {LoraColumns} FROM \"loras\" WHERE {where} ORDER BY \"CreatedAt\" DESC, \"Id\" DESC LIMIT @p4";
    }

    /// <summary>
    /// On PostgreSQL the command is prepared at each use, once its values are bound (Npgsql types the statement from
    /// them): the connection came back from the pool, and Npgsql finds the statement already prepared on the physical
    /// connection without a round trip. On SQLite it was prepared when made, on the connection that stays open.
    /// </summary>
    private async Task<DbDataReader> ExecuteAsync(DbCommand command, CommandBehavior behavior, CancellationToken ct)
    {
        if (!_sqlite) await command.PrepareAsync(ct);
        return await command.ExecuteReaderAsync(behavior, ct);
    }

    private static Lora ReadLora(DbDataReader r) => new()
    {
        Id = r.GetString(0),
        TeamId = r.GetString(1),
        Name = r.GetString(2),
        SubjectKind = r.GetString(3),
        Gender = NullableString(r, 4),
        Ethnicity = NullableString(r, 5),
        Age = NullableString(r, 6),
        Status = r.GetString(7),
        ImageCount = r.GetInt32(8),
        Steps = r.GetInt32(9),
        LoraRank = r.GetInt32(10),
        BaseModel = r.GetString(11),
        TriggerWord = r.GetString(12),
        ProgressStep = r.IsDBNull(13) ? null : r.GetInt32(13),
        ProgressTotal = r.IsDBNull(14) ? null : r.GetInt32(14),
        EtaSeconds = r.IsDBNull(15) ? null : r.GetInt32(15),
        Loss = r.IsDBNull(16) ? null : r.GetDouble(16),
        ErrorCode = NullableString(r, 17),
        ErrorMessage = NullableString(r, 18),
        MetadataJson = NullableString(r, 19),
        WebhookUrl = NullableString(r, 20),
        WebhookEvents = r.GetString(21),
        CreatorKeyHash = r.GetFieldValue<byte[]>(22),
        CreditsHeld = r.GetInt64(23),
        Purged = r.GetBoolean(24),
        CreatedAt = Utc(r.GetDateTime(25)),
        StartedAt = NullableUtc(r, 26),
        TrainingStartedAt = NullableUtc(r, 27),
        CompletedAt = NullableUtc(r, 28),
        ArchivedAt = NullableUtc(r, 29),
    };

    private static string? NullableString(DbDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);

    /// <summary>As EF's timestamp converter reads it: SQLite hands the text back unspecified, PostgreSQL as UTC.</summary>
    private static DateTime Utc(DateTime value) => DateTime.SpecifyKind(value, DateTimeKind.Utc);

    private static DateTime? NullableUtc(DbDataReader r, int i) => r.IsDBNull(i) ? null : Utc(r.GetDateTime(i));

    private async ValueTask<Session> RentAsync(CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!_idle.TryTake(out var session)) session = new Session(_connect());
        if (session.Connection.State != ConnectionState.Open)
        {
            try
            {
                await session.Connection.OpenAsync(ct);
                if (session.Connection is SqliteConnection sqlite) await SqlitePragmas.EnsureAsync(sqlite, ct);
            }
            catch
            {
                session.Dispose();
                throw;
            }
        }
        return session;
    }

    private void Return(Session session)
    {
        if (_disposed || _idle.Count >= MaxIdle)
        {
            session.Dispose();
            return;
        }
        if (!_sqlite) session.Connection.Close();
        _idle.Add(session);
    }

    public void Dispose()
    {
        _disposed = true;
        while (_idle.TryTake(out var session)) session.Dispose();
    }

    /// <summary>One connection and the commands made on it, by their SQL.</summary>
    private sealed class Session(DbConnection connection) : IDisposable
    {
        private readonly Dictionary<string, DbCommand> _commands = new(ReferenceEqualityComparer.Instance);

        public DbConnection Connection => connection;

        /// <summary>The command for <paramref name="sql"/> with parameters <c>@p0</c>…, made once per connection.</summary>
        public DbCommand Command(string sql, int parameters)
        {
            if (!_commands.TryGetValue(sql, out var command))
            {
                command = connection.CreateCommand();
                command.CommandText = sql;
                for (var i = 0; i < parameters; i++)
                {
                    var parameter = command.CreateParameter();
                    parameter.ParameterName = "@p" + i;
                    command.Parameters.Add(parameter);
                }
                // Microsoft.Data.Sqlite keeps a command's statements across executions only once it was prepared;
                // otherwise it parses the SQL again at each one.
                if (connection is SqliteConnection) command.Prepare();
                _commands[sql] = command;
            }
            return command;
        }

        public void Dispose()
        {
            foreach (var command in _commands.Values) command.Dispose();
            connection.Dispose();
        }
    }
}
