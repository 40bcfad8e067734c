using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using System.Data.Common;

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
            services.AddDbContext<PostgresLikenessDb>(o => o.UseNpgsql(database, npgsql => npgsql.CommandTimeout(60)));
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
        services.AddDbContext<SqliteLikenessDb>(o => o
            .UseSqlite(connectionString)
            .AddInterceptors(new SqlitePragmas()));
        services.AddScoped<LikenessDb>(sp => sp.GetRequiredService<SqliteLikenessDb>());
        return services;
    }

    /// <summary>WAL lets readers run beside the one writer; busy_timeout makes writers queue instead of failing.</summary>
    private sealed class SqlitePragmas : DbConnectionInterceptor
    {
        public override async Task ConnectionOpenedAsync(DbConnection connection, ConnectionEndEventData eventData, CancellationToken cancellationToken = default)
        {
            await using var cmd = connection.CreateCommand();
            cmd.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=60000; PRAGMA foreign_keys=ON;";
            await cmd.ExecuteNonQueryAsync(cancellationToken);
        }

        public override void ConnectionOpened(DbConnection connection, ConnectionEndEventData eventData)
        {
            using var cmd = connection.CreateCommand();
            cmd.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=60000; PRAGMA foreign_keys=ON;";
            cmd.ExecuteNonQuery();
        }
    }
}
