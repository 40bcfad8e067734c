using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
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
            .AddInterceptors(new SqlitePragmas()));
        services.AddScoped<LikenessDb>(sp => sp.GetRequiredService<SqliteLikenessDb>());
        return services;
    }

    /// <summary>
    /// WAL lets readers run beside the one writer; busy_timeout makes writers queue instead of failing. The pragmas
    /// belong to the physical connection, which Microsoft.Data.Sqlite's pool keeps open across logical opens, so they
    /// run once per physical connection (known by its native handle), not at every open: EF opens and closes the
    /// connection around every query, and re-running them cost each request two more statements to parse and run.
    /// </summary>
    private sealed class SqlitePragmas : DbConnectionInterceptor
    {
        private const string Pragmas = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=60000; PRAGMA foreign_keys=ON;";
        private static readonly object Configured = new();
        private readonly ConditionalWeakTable<object, object> _configured = new();

        public override async Task ConnectionOpenedAsync(DbConnection connection, ConnectionEndEventData eventData, CancellationToken cancellationToken = default)
        {
            if (!NeedsPragmas(connection, out var handle)) return;
            await using var cmd = connection.CreateCommand();
            cmd.CommandText = Pragmas;
            await cmd.ExecuteNonQueryAsync(cancellationToken);
            Remember(handle);
        }

        public override void ConnectionOpened(DbConnection connection, ConnectionEndEventData eventData)
        {
            if (!NeedsPragmas(connection, out var handle)) return;
            using var cmd = connection.CreateCommand();
            cmd.CommandText = Pragmas;
            cmd.ExecuteNonQuery();
            Remember(handle);
        }

        private bool NeedsPragmas(DbConnection connection, out object? handle)
        {
            handle = (connection as SqliteConnection)?.Handle;
            return handle is null || !_configured.TryGetValue(handle, out _);
        }

        private void Remember(object? handle)
        {
            if (handle is not null) _configured.AddOrUpdate(handle, Configured);
        }
    }
}
