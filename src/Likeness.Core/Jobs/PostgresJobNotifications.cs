using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Likeness.Core.Jobs;

/// <summary>
/// PostgreSQL LISTEN/NOTIFY between processes: an API node that queues a job notifies the channel, and every
/// worker process listening wakes its idle workers at once instead of at the next poll.
/// </summary>
public sealed class PostgresJobNotifications : BackgroundService
{
    private const string Channel = "likeness_jobs";
    private readonly string _connectionString;
    private readonly JobSignals _signals;
    private readonly ILogger<PostgresJobNotifications> _logger;
    private readonly NpgsqlDataSource _dataSource;

    public PostgresJobNotifications(string connectionString, JobSignals signals, ILogger<PostgresJobNotifications> logger)
    {
        _connectionString = connectionString;
        _signals = signals;
        _logger = logger;
        _dataSource = NpgsqlDataSource.Create(connectionString);
        signals.Publish = queue => _ = SendAsync(queue);
    }

    private async Task SendAsync(string queue)
    {
        try
        {
            await using var command = _dataSource.CreateCommand("SELECT pg_notify(@channel, @queue)");
            command.Parameters.AddWithValue("channel", Channel);
            command.Parameters.AddWithValue("queue", queue);
            await command.ExecuteNonQueryAsync();
        }
        catch (Exception ex) { _logger.LogDebug(ex, "NOTIFY for {Queue} failed; workers will poll", queue); }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = new NpgsqlConnection(_connectionString);
                await connection.OpenAsync(stoppingToken);
                connection.Notification += (_, e) => _signals.Wake(e.Payload);
                await using (var listen = new NpgsqlCommand($"LISTEN {Channel}", connection)) await listen.ExecuteNonQueryAsync(stoppingToken);
                while (!stoppingToken.IsCancellationRequested) await connection.WaitAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { return; }
            catch (Exception ex)
            {
                _logger.LogWarning(ex, "Listening for job notifications failed; retrying in 1 s (workers poll meanwhile)");
                try { await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken); } catch (OperationCanceledException) { return; }
            }
        }
    }

    public override void Dispose()
    {
        _dataSource.Dispose();
        base.Dispose();
    }
}
