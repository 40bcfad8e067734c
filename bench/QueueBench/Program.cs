// Queue throughput on PostgreSQL: N no-op jobs (a queue kind used only here) claimed and completed by 1, 2 and 4
// workers, each worker with its own connection, as separate worker processes would have.
// Usage: LIKENESS_TEST_POSTGRES="Host=…;Username=…;Password=…;Database=postgres" dotnet run -c Release --project bench/QueueBench [jobs]
using System.Diagnostics;
using Likeness.Core.Data;
using Likeness.Core.Jobs;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;

var admin = Environment.GetEnvironmentVariable("LIKENESS_TEST_POSTGRES")
    ?? throw new InvalidOperationException("Set LIKENESS_TEST_POSTGRES to an Npgsql connection string.");
var jobs = args.Length > 0 ? int.Parse(args[0]) : 2000;
Console.WriteLine($"{jobs} no-op jobs per run, PostgreSQL, lease 60 s, poll 50 ms");

foreach (var workers in new[] { 1, 2, 4 })
{
    var name = "likeness_queuebench_" + Guid.NewGuid().ToString("N")[..8];
    await Exec(admin, $"CREATE DATABASE {name}");
    var cs = new NpgsqlConnectionStringBuilder(admin) { Database = name }.ConnectionString;
    var services = new ServiceCollection().AddLikenessDatabase(cs);
    services.AddSingleton(TimeProvider.System).AddSingleton<JobSignals>();
    services.AddKeyedScoped<IJobHandler, NoopHandler>(NoopHandler.Queue);
    services.AddSingleton(Options.Create(new WorkerOptions { PollInterval = TimeSpan.FromMilliseconds(50) }));
    await using var provider = services.BuildServiceProvider();
    using (var scope = provider.CreateScope())
    {
        var db = scope.ServiceProvider.GetRequiredService<LikenessDb>();
        await db.Database.MigrateAsync();
        var now = DateTime.UtcNow;
        for (var i = 0; i < jobs; i++) JobQueue.Enqueue(db, NoopHandler.Queue, $"noop-{i}", now);
        await db.SaveChangesAsync();
    }

    var runners = Enumerable.Range(0, workers).Select(_ => new JobWorker(NoopHandler.Queue, provider.GetRequiredService<IServiceScopeFactory>(),
        provider.GetRequiredService<JobSignals>(), provider.GetRequiredService<IOptions<WorkerOptions>>(), TimeProvider.System,
        NullLogger<JobWorker>.Instance)).ToList();
    var watch = Stopwatch.StartNew();
    foreach (var r in runners) await r.StartAsync(CancellationToken.None);
    while (true)
    {
        using var scope = provider.CreateScope();
        var db = scope.ServiceProvider.GetRequiredService<LikenessDb>();
        if (await db.Jobs.CountAsync(j => j.State == JobStates.Done) == jobs) break;
        await Task.Delay(20);
    }
    watch.Stop();
    foreach (var r in runners) await r.StopAsync(CancellationToken.None);
    Console.WriteLine($"{workers} worker(s): {jobs / watch.Elapsed.TotalSeconds:F0} jobs/s ({watch.Elapsed.TotalSeconds:F2} s)");
    NpgsqlConnection.ClearAllPools();
    await Exec(admin, $"DROP DATABASE {name} WITH (FORCE)");
}

static async Task Exec(string cs, string sql)
{
    await using var c = new NpgsqlConnection(cs);
    await c.OpenAsync();
    await using var cmd = new NpgsqlCommand(sql, c);
    await cmd.ExecuteNonQueryAsync();
}

sealed class NoopHandler : IJobHandler
{
    public const string Queue = "noop";
    public Task<JobOutcome> HandleAsync(Job job, CancellationToken cancellationToken) => Task.FromResult(JobOutcome.Done);
    public Task GiveUpAsync(Job job, string error, CancellationToken cancellationToken) => Task.CompletedTask;
}
