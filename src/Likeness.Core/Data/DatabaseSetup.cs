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
            throw new InvalidOperationException(
                $"Unsupported --database '{Redact(database)}': this build stores data in SQLite ('sqlite:PATH').");
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

    private static string Redact(string s) => s.Contains("password", StringComparison.OrdinalIgnoreCase) ? "(connection string)" : s;

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
