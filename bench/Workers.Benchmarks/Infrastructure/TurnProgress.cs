using System.Diagnostics;
using Npgsql;
using Workers.Testing;

namespace Workers.Benchmarks.Infrastructure;

/// <summary>Waiting for a run's turns with a progress line every 5 s, so a long run shows it is moving.</summary>
internal static class TurnProgress
{
    /// <summary>Polls the persisted turn count until it reaches <paramref name="count"/>; returns the time on
    /// <paramref name="since"/> then.</summary>
    public static async Task<TimeSpan> WaitForTurnsAsync(this WorkersSystem system, long count, TimeSpan timeout, Stopwatch since,
        string what)
    {
        var nextReport = TimeSpan.FromSeconds(5);
        long seen;
        // One connection for the whole wait: a new one per poll would be part of what the benchmark measures.
        await using var connection = await system.Db.OpenAdminAsync();
        await using var command = new NpgsqlCommand("SELECT count(*) FROM workers.turns", connection);
        while ((seen = (long)(await command.ExecuteScalarAsync())!) < count)
        {
            if (since.Elapsed > timeout)
            {
                throw new TimeoutException($"{what}: {seen} of {count} turns after {timeout}");
            }

            if (since.Elapsed > nextReport)
            {
                Out.Line($"  {what}: {Out.I(seen)} of {Out.I(count)} turns persisted");
                nextReport += TimeSpan.FromSeconds(5);
            }

            await Task.Delay(50);
        }

        return since.Elapsed;
    }
}
