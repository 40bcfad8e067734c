using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.DependencyInjection;
using System.Data.Common;
using System.Runtime.CompilerServices;

namespace Likeness.Core.Data;

/// <summary>Chooses the provider from the <c>--database</c> setting: <c>sqlite:PATH</c> or an Npgsql connection string.</summary>
public static class DatabaseSetup
{
    public static bool IsSqlite(string database) => database.StartsWith("sqlite:", StringComparison.OrdinalIgnoreCase);

    public static IServiceCollection AddLikenessDatabase(this IServiceCollection services, string database)
    {
        if (!IsSqlite(database))
        {
            // An Npgsql key=value connection string: PostgreSQL is the system of record shared by every node.
            try { _ = new Npgsql.NpgsqlConnectionStringBuilder(database); }
            catch (ArgumentException ex)
            {
                throw new InvalidOperationException($"--database is neither 'sqlite:PATH' nor an Npgsql connection string: {ex.Message}");
            }
            // Pooled: a request leases a ready context instead of building options and services anew (see SqlitePragmas).
            services.AddDbContextPool<PostgresLikenessDb>(o => o.UseNpgsql(database, npgsql => npgsql.CommandTimeout(60)));
            services.AddScoped<LikenessDb>(sp => sp.GetRequiredService<PostgresLikenessDb>());
            services.AddSingleton(_ => HotReads.ForPostgres(database));
            return services;
        }
        var path = database["sqlite:".Length..];
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        var connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = 60,
        }.ToString();
        // Pooled: building a context's options and resolving its internal services cost more than a read by id
        // (issue #11's profile); the pool hands out a reset context, its options built once.
        services.AddDbContextPool<SqliteLikenessDb>(o => o
            .UseSqlite(connectionString)
            .AddInterceptors(new SqlitePragmasInterceptor()));
        services.AddScoped<LikenessDb>(sp => sp.GetRequiredService<SqliteLikenessDb>());
        services.AddSingleton(_ => HotReads.ForSqlite(connectionString));
        return services;
    }

    /// <summary>
    /// Applies the migrations. The history table is created first with EF's own script (<c>IF NOT EXISTS</c>): on a
    /// fresh PostgreSQL database EF otherwise reads the table before making it, and logs the failed read — which it
    /// expects and handles — as an error with the command's text on every first start. On PostgreSQL the whole of it
    /// runs under a session advisory lock: nodes starting together on a fresh database would otherwise race on
    /// creating that table (<c>IF NOT EXISTS</c> is not atomic there: the loser fails on the catalogue's unique index)
    /// before EF's own migration lock is reached. The lock goes with the connection, so a node that dies holding it
    /// frees it.
    /// </summary>
    public static async Task MigrateAsync(LikenessDb db, CancellationToken ct)
    {
        async Task CreateHistoryThenMigrate()
        {
            await db.Database.ExecuteSqlRawAsync(db.GetService<IHistoryRepository>().GetCreateIfNotExistsScript(), ct);
            await db.Database.MigrateAsync(ct);
        }

        if (!db.Database.IsNpgsql())
        {
            await CreateHistoryThenMigrate();
            return;
        }
        await db.Database.OpenConnectionAsync(ct);
        try
        {
            await db.Database.ExecuteSqlRawAsync(LockMigrations, ct);
            try
            {
                await CreateHistoryThenMigrate();
            }
            finally
            {
                await db.Database.ExecuteSqlRawAsync(UnlockMigrations, CancellationToken.None);
            }
        }
        finally
        {
            await db.Database.CloseConnectionAsync();
        }
    }

    // The migration's advisory lock key: "LKNS" in ASCII (0x4C4B4E53), a constant the database's other users do not take.
    private const string LockMigrations = "SELECT pg_advisory_lock(1280003667)";
    private const string UnlockMigrations = "SELECT pg_advisory_unlock(1280003667)";

    /// <summary>Runs <see cref="SqlitePragmas"/> on every connection EF opens.</summary>
    private sealed class SqlitePragmasInterceptor : DbConnectionInterceptor
    {
        public override Task ConnectionOpenedAsync(DbConnection connection, ConnectionEndEventData eventData, CancellationToken cancellationToken = default) =>
            connection is SqliteConnection sqlite ? SqlitePragmas.EnsureAsync(sqlite, cancellationToken) : Task.CompletedTask;

        public override void ConnectionOpened(DbConnection connection, ConnectionEndEventData eventData)
        {
            if (connection is SqliteConnection sqlite) SqlitePragmas.Ensure(sqlite);
        }
    }
}

/// <summary>
/// WAL lets readers run beside the one writer; busy_timeout makes writers queue instead of failing. The pragmas
/// belong to the physical connection, which Microsoft.Data.Sqlite's pool keeps open across logical opens, so they
/// run once per physical connection (known by its native handle), not at every open: EF opens and closes the
/// connection around every query, and re-running them cost each request two more statements to parse and run.
/// <see cref="HotReads"/>' SQLite connections are its own, outside this pool: WAL is a property of the file, and
/// they set their own busy timeout (<see cref="SqliteHotReadSession"/>).
/// </summary>
internal static class SqlitePragmas
{
    private const string Pragmas = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=60000; PRAGMA foreign_keys=ON;";
    private static readonly object Configured = new();
    private static readonly ConditionalWeakTable<object, object> ConfiguredHandles = new();

    public static async Task EnsureAsync(SqliteConnection connection, CancellationToken ct)
    {
        if (!Needed(connection, out var handle)) return;
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = Pragmas;
        await cmd.ExecuteNonQueryAsync(ct);
        ConfiguredHandles.AddOrUpdate(handle, Configured);
    }

    public static void Ensure(SqliteConnection connection)
    {
        if (!Needed(connection, out var handle)) return;
        using var cmd = connection.CreateCommand();
        cmd.CommandText = Pragmas;
        cmd.ExecuteNonQuery();
        ConfiguredHandles.AddOrUpdate(handle, Configured);
    }

    private static bool Needed(SqliteConnection connection, out object handle)
    {
        handle = connection.Handle ?? throw new InvalidOperationException("The connection is not open.");
        return !ConfiguredHandles.TryGetValue(handle, out _);
    }
}
