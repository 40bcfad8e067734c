using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;

namespace Likeness.Core.Data;

/// <summary>
/// The system of record. Provider-neutral: each provider has a subclass that carries its own migrations
/// (<see cref="SqliteLikenessDb"/>; PostgreSQL gets its own), so the model is written once.
/// </summary>
public abstract class LikenessDb(DbContextOptions options) : DbContext(options)
{
    public DbSet<Team> Teams => Set<Team>();
    public DbSet<ApiKey> ApiKeys => Set<ApiKey>();
    public DbSet<LedgerEntry> Ledger => Set<LedgerEntry>();
    public DbSet<Lora> Loras => Set<Lora>();
    public DbSet<Generation> Generations => Set<Generation>();
    public DbSet<GenerationImage> GenerationImages => Set<GenerationImage>();
    public DbSet<Job> Jobs => Set<Job>();
    public DbSet<WebhookMessage> WebhookMessages => Set<WebhookMessage>();
    public DbSet<WebhookAttempt> WebhookAttempts => Set<WebhookAttempt>();
    public DbSet<IdempotencyRecord> IdempotencyRecords => Set<IdempotencyRecord>();
    public DbSet<ServerSecret> ServerSecrets => Set<ServerSecret>();

    /// <summary>True on providers that take row locks with <c>FOR UPDATE</c> (PostgreSQL).</summary>
    public virtual bool SupportsRowLocks => false;

    protected override void ConfigureConventions(ModelConfigurationBuilder configurationBuilder)
    {
        // Every timestamp is UTC; SQLite hands DateTime back unspecified, PostgreSQL insists on UTC.
        configurationBuilder.Properties<DateTime>().HaveConversion<UtcConverter>();
        configurationBuilder.Properties<DateTime?>().HaveConversion<UtcConverter>();
    }

    protected override void OnModelCreating(ModelBuilder b)
    {
        b.Entity<Team>(e =>
        {
            e.ToTable("teams");
            e.HasKey(x => x.Id);
            e.HasIndex(x => x.Name).IsUnique();
            e.Property(x => x.Name).HasMaxLength(100);
        });
        b.Entity<ApiKey>(e =>
        {
            e.ToTable("api_keys");
            e.HasKey(x => x.Id);
            e.HasIndex(x => x.KeyHash).IsUnique();
            e.HasIndex(x => x.TeamId);
        });
        b.Entity<LedgerEntry>(e =>
        {
            e.ToTable("ledger");
            e.HasKey(x => x.Id);
            e.HasIndex(x => new { x.TeamId, x.Id });
        });
        b.Entity<Lora>(e =>
        {
            e.ToTable("loras");
            e.HasKey(x => x.Id);
            e.HasIndex(x => x.TriggerWord).IsUnique();
            e.HasIndex(x => new { x.TeamId, x.CreatedAt, x.Id });
            e.HasIndex(x => new { x.TeamId, x.Status });
            e.Property(x => x.Status).HasMaxLength(16);
            e.Property(x => x.TriggerWord).HasMaxLength(5);
        });
        b.Entity<Generation>(e =>
        {
            e.ToTable("generations");
            e.HasKey(x => x.Id);
            e.HasIndex(x => new { x.TeamId, x.CreatedAt });
            e.HasMany(x => x.Images).WithOne().HasForeignKey(x => x.GenerationId);
        });
        b.Entity<GenerationImage>(e =>
        {
            e.ToTable("generation_images");
            e.HasKey(x => x.Id);
            e.HasIndex(x => new { x.GenerationId, x.Index }).IsUnique();
        });
        b.Entity<Job>(e =>
        {
            e.ToTable("jobs");
            e.HasKey(x => x.Id);
            e.HasIndex(x => new { x.Queue, x.State, x.RunAfter });
            e.HasIndex(x => new { x.SubjectId, x.Queue });
        });
        b.Entity<WebhookMessage>(e =>
        {
            e.ToTable("webhook_messages");
            e.HasKey(x => x.Id);
            e.HasIndex(x => x.LoraId);
        });
        b.Entity<WebhookAttempt>(e =>
        {
            e.ToTable("webhook_attempts");
            e.HasKey(x => x.Id);
            e.HasIndex(x => new { x.LoraId, x.Id });
        });
        b.Entity<IdempotencyRecord>(e =>
        {
            e.ToTable("idempotency_keys");
            e.HasKey(x => new { x.TeamId, x.Key });
            e.HasIndex(x => x.ExpiresAt);
        });
        b.Entity<ServerSecret>(e =>
        {
            e.ToTable("server_secrets");
            e.HasKey(x => x.Name);
        });
    }

    private sealed class UtcConverter() : ValueConverter<DateTime, DateTime>(
        v => v.Kind == DateTimeKind.Utc ? v : v.ToUniversalTime(),
        v => DateTime.SpecifyKind(v, DateTimeKind.Utc));
}

public sealed class SqliteLikenessDb(DbContextOptions<SqliteLikenessDb> options) : LikenessDb(options);

public sealed class PostgresLikenessDb(DbContextOptions<PostgresLikenessDb> options) : LikenessDb(options)
{
    public override bool SupportsRowLocks => true;
}
