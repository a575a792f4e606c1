using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Workers.Worker.Retention;

/// <summary>Deletes sessions idle past the TTL the migrator set, on a timer, and logs how many.</summary>
public sealed class SessionRetentionService(
    NpgsqlDataSource dataSource, IOptions<RetentionOptions> options, ILogger<SessionRetentionService> logger) : BackgroundService
{
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        // A SECURITY DEFINER function: it deletes across users and returns only a count, so the worker's role still
        // reads no row it does not own; and it takes no argument: the TTL is the migrator's setting, not ours.
        await using var command = dataSource.CreateCommand("SELECT workers.delete_idle_sessions()");
        var deleted = (int)(await command.ExecuteScalarAsync(cancellationToken))!;
        logger.LogInformation("Retention deleted {Count} idle sessions", deleted);
        return deleted;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.SweepInterval);
        do
        {
            try
            {
                await SweepAsync(stoppingToken);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException)
            {
                logger.LogWarning(e, "Retention sweep failed; next try in {Interval}", options.Value.SweepInterval);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}
