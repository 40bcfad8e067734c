using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace Likeness.Core.Data;

/// <summary>Lets <c>dotnet ef migrations add X --project src/Likeness.Core --context SqliteLikenessDb</c> build the model.</summary>
public sealed class SqliteDesignTimeFactory : IDesignTimeDbContextFactory<SqliteLikenessDb>
{
    public SqliteLikenessDb CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<SqliteLikenessDb>().UseSqlite("Data Source=design.db").Options);
}

/// <summary>Lets <c>dotnet ef migrations add X --project src/Likeness.Core --context PostgresLikenessDb</c> build the model (no server needed).</summary>
public sealed class PostgresDesignTimeFactory : IDesignTimeDbContextFactory<PostgresLikenessDb>
{
    public PostgresLikenessDb CreateDbContext(string[] args) =>
        new(new DbContextOptionsBuilder<PostgresLikenessDb>().UseNpgsql("Host=localhost;Database=likeness_design").Options);
}
