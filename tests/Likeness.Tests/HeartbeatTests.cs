using System.Data.Common;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Likeness.Core.Data;
using Likeness.Core.Jobs;
using Likeness.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Likeness.Tests;

/// <summary>The job heartbeat runs beside the handler; it must never use the handler's DbContext (EF Core's are not thread-safe).</summary>
[Collection(ProcessTests.Name)]
public sealed class HeartbeatTests
{
    [Fact]
    public async Task A_heartbeat_during_the_handlers_database_work_neither_fails_nor_fails_the_job()
    {
        // Slow commands and the shortest lease (a beat every ~333 ms) keep the handlers inside their contexts whenever
        // a beat comes: a heartbeat that asked the handler's own context would collide with it.
        var logs = new LogCapture();
        var slow = new SlowCommands();
        await using var server = await LikenessServer.StartAsync(
            new Dictionary<string, string?> { ["Likeness:Workers:Lease"] = "00:00:01" },
            services: s =>
            {
                logs.AddTo(s);
                s.ConfigureDbContext<SqliteLikenessDb>(o => o.AddInterceptors(slow));
            });
        slow.Delay = TimeSpan.FromMilliseconds(150);

        var response = await server.Client.PostAsync("/v2/loras", LoraForms.Create(TestImages.Pngs(15)));
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetString()!;
        var (lora, _) = await server.WaitForLoraAsync(id, l => l.GetProperty("status").GetString() is "READY" or "FAILED");
        slow.Delay = TimeSpan.Zero;

        Assert.True(lora.GetProperty("status").GetString() == "READY", lora + "\n" + logs.Dump());
        var workerTrouble = logs.Entries.Where(e => e.Category == typeof(JobWorker).FullName && e.Level >= LogLevel.Warning).ToList();
        Assert.True(workerTrouble.Count == 0, string.Join('\n', workerTrouble));
        var attempts = await server.WithDb(db => db.Jobs.Where(j => j.SubjectId == id).Select(j => j.Attempts).ToListAsync());
        Assert.All(attempts, a => Assert.Equal(1, a));
    }

    /// <summary>Holds every command for <see cref="Delay"/> before it runs.</summary>
    private sealed class SlowCommands : DbCommandInterceptor
    {
        public TimeSpan Delay { get; set; }

        public override async ValueTask<InterceptionResult<DbDataReader>> ReaderExecutingAsync(DbCommand command, CommandEventData eventData,
            InterceptionResult<DbDataReader> result, CancellationToken cancellationToken = default)
        {
            await Hold(cancellationToken);
            return result;
        }

        public override async ValueTask<InterceptionResult<int>> NonQueryExecutingAsync(DbCommand command, CommandEventData eventData,
            InterceptionResult<int> result, CancellationToken cancellationToken = default)
        {
            await Hold(cancellationToken);
            return result;
        }

        public override async ValueTask<InterceptionResult<object>> ScalarExecutingAsync(DbCommand command, CommandEventData eventData,
            InterceptionResult<object> result, CancellationToken cancellationToken = default)
        {
            await Hold(cancellationToken);
            return result;
        }

        private Task Hold(CancellationToken ct) => Delay > TimeSpan.Zero ? Task.Delay(Delay, ct) : Task.CompletedTask;
    }
}
