using System.Data;
using System.Data.Common;
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Data.Sqlite;
using Npgsql;
using SQLitePCL;

namespace Likeness.Core.Data;

/// <summary>The rows of one executed statement, read forward: the next row, then the current row's columns by position.</summary>
internal interface IHotRows : IAsyncDisposable
{
    ValueTask<bool> NextAsync(CancellationToken ct);
    bool IsNull(int column);
    string GetString(int column);
    int GetInt32(int column);
    long GetInt64(int column);
    double GetDouble(int column);
    bool GetBoolean(int column);
    byte[] GetBytes(int column);

    /// <summary>A timestamp as EF's converter reads it, as UTC (SQLite stores text with no zone, PostgreSQL <c>timestamptz</c>).</summary>
    DateTime GetUtc(int column);
}

/// <summary>One database connection that <see cref="HotReads"/> rents to one read at a time, and the statements made on it.</summary>
internal abstract class HotReadSession : IDisposable
{
    /// <summary>Opens the connection if it is not open.</summary>
    public abstract ValueTask OpenAsync(CancellationToken ct);

    /// <summary>Runs <paramref name="sql"/> with <paramref name="values"/> as <c>@p0</c>… (null as SQL NULL).</summary>
    public abstract ValueTask<IHotRows> ExecuteAsync(string sql, object?[] values, CommandBehavior behavior, CancellationToken ct);

    /// <summary>Called when the session goes back to the idle set.</summary>
    public virtual void Idle() { }

    public abstract void Dispose();
}

/// <summary>
/// PostgreSQL through Npgsql: the connection goes back to Npgsql's pool between reads (a server's connections are a
/// shared budget), and the command is prepared at each use once its values are bound (Npgsql types the statement from
/// them): Npgsql finds the statement already prepared on the physical connection without a round trip.
/// </summary>
internal sealed class PostgresHotReadSession(string connectionString) : HotReadSession
{
    private readonly NpgsqlConnection _connection = new(connectionString);
    private readonly Dictionary<string, NpgsqlCommand> _commands = new(ReferenceEqualityComparer.Instance);

    public override async ValueTask OpenAsync(CancellationToken ct)
    {
        if (_connection.State != ConnectionState.Open) await _connection.OpenAsync(ct);
    }

    public override async ValueTask<IHotRows> ExecuteAsync(string sql, object?[] values, CommandBehavior behavior, CancellationToken ct)
    {
        if (!_commands.TryGetValue(sql, out var command))
        {
            command = _connection.CreateCommand();
            command.CommandText = sql;
            for (var i = 0; i < values.Length; i++) command.Parameters.Add(new NpgsqlParameter { ParameterName = "@p" + i });
            _commands[sql] = command;
        }
        for (var i = 0; i < values.Length; i++) command.Parameters[i].Value = values[i] ?? DBNull.Value;
        await command.PrepareAsync(ct);
        return new ReaderRows(await command.ExecuteReaderAsync(behavior, ct));
    }

    public override void Idle() => _connection.Close();

    public override void Dispose()
    {
        foreach (var command in _commands.Values) command.Dispose();
        _connection.Dispose();
    }

    private sealed class ReaderRows(DbDataReader reader) : IHotRows
    {
        public async ValueTask<bool> NextAsync(CancellationToken ct) => await reader.ReadAsync(ct);
        public bool IsNull(int column) => reader.IsDBNull(column);
        public string GetString(int column) => reader.GetString(column);
        public int GetInt32(int column) => reader.GetInt32(column);
        public long GetInt64(int column) => reader.GetInt64(column);
        public double GetDouble(int column) => reader.GetDouble(column);
        public bool GetBoolean(int column) => reader.GetBoolean(column);
        public byte[] GetBytes(int column) => reader.GetFieldValue<byte[]>(column);
        public DateTime GetUtc(int column) => DateTime.SpecifyKind(reader.GetDateTime(column), DateTimeKind.Utc);
        public ValueTask DisposeAsync() => reader.DisposeAsync();
    }
}

/// <summary>
/// SQLite through SQLitePCLRaw, the library under Microsoft.Data.Sqlite, on a connection of its own that stays open
/// with its statements prepared once. Issue #11's profile of the list (ten rows of 30 columns) found as much of the
/// read's time around SQLite's calls as in them: Microsoft.Data.Sqlite asks a column's type before each value
/// and again for a null check, and every call went through the provider's interface, a safe-handle add-ref and release
/// and the connection's mutex. Here the connection is opened without SQLite's mutex (a session serves one read at a
/// time: <see cref="HotReads"/> rents it out exclusively), and the columns are read with one direct call each on the
/// statement, which the session keeps alive for as long as it exists. Values are bound and timestamps read in the text
/// form EF Core's SQLite provider writes (<c>yyyy-MM-dd HH:mm:ss.FFFFFFF</c>).
/// </summary>
internal sealed class SqliteHotReadSession : HotReadSession
{
    private const string TimestampFormat = @"yyyy\-MM\-dd HH\:mm\:ss.FFFFFFF";
    private static readonly int BusyTimeoutMs = (int)TimeSpan.FromSeconds(60).TotalMilliseconds;

    private readonly sqlite3 _db;
    private readonly Dictionary<string, Statement> _statements = new(ReferenceEqualityComparer.Instance);

    static SqliteHotReadSession() => Batteries_V2.Init();

    public SqliteHotReadSession(string path)
    {
        var rc = raw.sqlite3_open_v2(path, out _db, raw.SQLITE_OPEN_READWRITE | raw.SQLITE_OPEN_NOMUTEX | raw.SQLITE_OPEN_PRIVATECACHE, null);
        if (rc != raw.SQLITE_OK)
        {
            // The message is read from the handle before it is closed.
            using (_db) Check(rc, _db);
        }
        // A reader waits for a checkpoint or recovery instead of failing (the same wait EF's connections use).
        raw.sqlite3_busy_timeout(_db, BusyTimeoutMs);
    }

    public override ValueTask OpenAsync(CancellationToken ct) => ValueTask.CompletedTask;

    public override ValueTask<IHotRows> ExecuteAsync(string sql, object?[] values, CommandBehavior behavior, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        if (!_statements.TryGetValue(sql, out var statement)) _statements[sql] = statement = Prepare(sql, values.Length);
        statement.Bind(values);
        return ValueTask.FromResult<IHotRows>(statement);
    }

    private Statement Prepare(string sql, int parameters)
    {
        Check(raw.sqlite3_prepare_v3(_db, sql, raw.SQLITE_PREPARE_PERSISTENT, out var stmt), _db);
        // A shape's SQL names only the parameters it uses; the others are bound nowhere (index 0).
        var indexes = Enumerable.Range(0, parameters).Select(i => raw.sqlite3_bind_parameter_index(stmt, "@p" + i)).ToArray();
        return new Statement(_db, stmt, indexes);
    }

    /// <summary>Throws Microsoft.Data.Sqlite's exception, with the connection's message, for any result but OK, ROW or DONE.</summary>
    private static void Check(int rc, sqlite3 db) => SqliteException.ThrowExceptionForRC(rc, db);

    public override void Dispose()
    {
        foreach (var statement in _statements.Values) statement.Handle.Dispose();
        _db.Dispose();
    }

    /// <summary>A prepared statement and, while it runs, its rows.</summary>
    private sealed class Statement(sqlite3 db, sqlite3_stmt handle, int[] indexes) : IHotRows
    {
        // The session holds the handle until it is disposed, and never while rented: the raw pointer outlives every read.
        private readonly nint _stmt = handle.DangerousGetHandle();

        public sqlite3_stmt Handle => handle;

        public void Bind(object?[] values)
        {
            for (var i = 0; i < values.Length; i++)
            {
                if (indexes[i] == 0) continue;
                var rc = values[i] switch
                {
                    null => raw.sqlite3_bind_null(handle, indexes[i]),
                    string s => raw.sqlite3_bind_text(handle, indexes[i], s),
                    byte[] b => raw.sqlite3_bind_blob(handle, indexes[i], b),
                    int n => raw.sqlite3_bind_int64(handle, indexes[i], n),
                    long n => raw.sqlite3_bind_int64(handle, indexes[i], n),
                    DateTime t => raw.sqlite3_bind_text(handle, indexes[i], t.ToString(TimestampFormat, CultureInfo.InvariantCulture)),
                    var other => throw new ArgumentException($"A value of type {other.GetType()} cannot be bound here."),
                };
                Check(rc, db);
            }
        }

        public ValueTask<bool> NextAsync(CancellationToken ct)
        {
            var rc = raw.sqlite3_step(handle);
            Check(rc, db);
            return ValueTask.FromResult(rc == raw.SQLITE_ROW);
        }

        public bool IsNull(int column) => Native.ColumnType(_stmt, column) == raw.SQLITE_NULL;

        public string GetString(int column) =>
            Marshal.PtrToStringUTF8(Native.ColumnText(_stmt, column), Native.ColumnBytes(_stmt, column));

        public int GetInt32(int column) => checked((int)Native.ColumnInt64(_stmt, column));
        public long GetInt64(int column) => Native.ColumnInt64(_stmt, column);
        public double GetDouble(int column) => Native.ColumnDouble(_stmt, column);
        public bool GetBoolean(int column) => Native.ColumnInt64(_stmt, column) != 0;

        public byte[] GetBytes(int column)
        {
            var blob = Native.ColumnBlob(_stmt, column);
            var bytes = new byte[Native.ColumnBytes(_stmt, column)];
            if (bytes.Length > 0) Marshal.Copy(blob, bytes, 0, bytes.Length);
            return bytes;
        }

        public DateTime GetUtc(int column)
        {
            var text = GetString(column);
            // What Microsoft.Data.Sqlite reads any other text with.
            return DateTime.SpecifyKind(ParseTimestamp(text) ?? DateTime.Parse(text, CultureInfo.InvariantCulture), DateTimeKind.Utc);
        }

        /// <summary>Ends the run: the statement is reset (its read lock released) and its bindings kept for the next bind.</summary>
        public ValueTask DisposeAsync()
        {
            raw.sqlite3_reset(handle);
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>Ticks per unit of the fraction's last digit, by the number of digits missing from seven.</summary>
    private static ReadOnlySpan<int> TicksPerDigit => [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000];

    /// <summary>
    /// EF Core's text form (<c>yyyy-MM-dd HH:mm:ss</c>, then <c>.</c> and one to seven digits of the second unless they
    /// are all zero), read by position — the general parser cost more than the rest of a row; null for any other text.
    /// </summary>
    internal static DateTime? ParseTimestamp(ReadOnlySpan<char> s)
    {
        static bool Number(ReadOnlySpan<char> digits, out int value) =>
            int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out value);

        if (s.Length < 19 || s.Length is 20 or > 27 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':'
            || (s.Length > 19 && s[19] != '.')
            || !Number(s[..4], out var year) || !Number(s[5..7], out var month) || !Number(s[8..10], out var day)
            || !Number(s[11..13], out var hour) || !Number(s[14..16], out var minute) || !Number(s[17..19], out var second)
            || year < 1 || month is < 1 or > 12 || day < 1 || day > DateTime.DaysInMonth(year, month) || hour > 23 || minute > 59 || second > 59)
            return null;
        var ticks = 0;
        if (s.Length > 19)
        {
            if (!Number(s[20..], out var fraction)) return null;
            ticks = fraction * TicksPerDigit[27 - s.Length];
        }
        return new DateTime(year, month, day, hour, minute, second).AddTicks(ticks);
    }

    /// <summary>
    /// SQLite's column getters, called on the statement's pointer in the library SQLitePCLRaw loads: each is a short
    /// read of the current row that neither blocks nor calls back, so it runs without the runtime's GC transition.
    /// </summary>
    private static class Native
    {
        private const string Library = "e_sqlite3";

        [DllImport(Library, EntryPoint = "sqlite3_column_type"), SuppressGCTransition]
        public static extern int ColumnType(nint stmt, int column);

        [DllImport(Library, EntryPoint = "sqlite3_column_int64"), SuppressGCTransition]
        public static extern long ColumnInt64(nint stmt, int column);

        [DllImport(Library, EntryPoint = "sqlite3_column_double"), SuppressGCTransition]
        public static extern double ColumnDouble(nint stmt, int column);

        [DllImport(Library, EntryPoint = "sqlite3_column_text"), SuppressGCTransition]
        public static extern nint ColumnText(nint stmt, int column);

        [DllImport(Library, EntryPoint = "sqlite3_column_blob"), SuppressGCTransition]
        public static extern nint ColumnBlob(nint stmt, int column);

        [DllImport(Library, EntryPoint = "sqlite3_column_bytes"), SuppressGCTransition]
        public static extern int ColumnBytes(nint stmt, int column);
    }
}
