using Npgsql;

namespace Likeness.Tests.Infrastructure;

/// <summary>
/// A fresh PostgreSQL database for one test, on the server named by LIKENESS_TEST_POSTGRES (an Npgsql connection
/// string to any database of that server; .ci/run installs, starts and names one). Without it the PostgreSQL tests
/// are skipped, with that reason shown.
/// </summary>
public sealed class PostgresDatabase : IAsyncDisposable
{
    public const string Variable = "LIKENESS_TEST_POSTGRES";
    private readonly string _admin;
    private readonly string _name;

    public string ConnectionString { get; }

    private PostgresDatabase(string admin, string name)
    {
        _admin = admin;
        _name = name;
        // Each process's pool stays small: the suite runs several servers and processes against one PostgreSQL,
        // and a pool waits for a free connection where the server would refuse a 101st one.
        ConnectionString = new NpgsqlConnectionStringBuilder(admin) { Database = name, Pooling = true, MaxPoolSize = 15 }.ConnectionString;
    }

    public static string? SkipReason => Environment.GetEnvironmentVariable(Variable) is { Length: > 0 }
        ? null
        : $"PostgreSQL tests need a server: set {Variable} to an Npgsql connection string (bash .ci/run installs and starts one).";

    public static async Task<PostgresDatabase> CreateAsync()
    {
        var admin = Environment.GetEnvironmentVariable(Variable)!;
        var name = "likeness_test_" + Guid.NewGuid().ToString("N")[..12];
        await using var connection = new NpgsqlConnection(admin);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
        await command.ExecuteNonQueryAsync();
        return new PostgresDatabase(admin, name);
    }

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(_admin);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS {_name} WITH (FORCE)", connection);
        await command.ExecuteNonQueryAsync();
    }
}
