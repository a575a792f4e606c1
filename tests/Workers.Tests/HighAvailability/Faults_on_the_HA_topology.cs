using System.Diagnostics;
using Workers.Tests.Infrastructure;
using Workers.Tests.Ordering;

namespace Workers.Tests.HighAvailability;

/// <summary>
/// The fast part of the fault suite, on the HA topology (<see cref="HaTopology"/>): three workers under load from a
/// producer with publisher confirms, one fault injected mid-run by <c>services.sh fault</c>. After each, every request
/// has exactly one persisted turn, in its session's order (the ordering checker: lost, duplicated, reordered), and the
/// time until turns flowed again is reported.
/// </summary>
[Collection("ha faults")]
public sealed class Faults_on_the_HA_topology(HaTopology ha, ITestOutputHelper output) : IClassFixture<HaTopology>
{
    private static readonly Dictionary<string, string> Settings = new()
    {
        ["Workers__MaxWaitingPerSession"] = "64",
        ["Llm__Offline__TokenDelay"] = "00:00:00.002",
    };

    [Fact]
    public Task Killing_the_RabbitMQ_node_that_leads_the_most_partitions_loses_no_request_and_keeps_order() =>
        UnderFaultAsync("rabbit-leader", "rabbit-restart");

    [Fact]
    public Task Killing_the_PostgreSQL_primary_loses_no_request_and_keeps_order() =>
        UnderFaultAsync("pg-primary", "pg-restart");

    [Fact]
    public Task Restarting_PgBouncer_loses_no_request_and_keeps_order() => UnderFaultAsync("pgbouncer", null);

    private async Task UnderFaultAsync(string fault, string? repair)
    {
        var services = ha.Require();
        var pool = await WorkersSystem.CreateAsync(services, settings: Settings, recordEvents: false);
        try
        {
            var workers = new[] { await pool.StartWorkerAsync(), await pool.StartWorkerAsync(), await pool.StartWorkerAsync() };
            await pool.WaitForBalanceAsync(workers, TimeSpan.FromSeconds(30));
            var load = new Load(sessions: 60, perSession: 20);
            using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(4));
            var publishing = HaTopology.PublishThroughFaultsAsync(pool.Broker.Options, load, pool.Broker, TimeSpan.FromMilliseconds(150), stop.Token);

            await Load.WaitForTurnsAsync(pool, load.Total / 4, TimeSpan.FromMinutes(2), load);
            var before = await pool.TurnCountAsync();
            var took = await HaTopology.FaultAsync(fault);
            var clock = Stopwatch.StartNew();
            // Serving again: turns are persisted past where they were when the fault script returned.
            var serving = await WaitForProgressAsync(pool, before + 60, TimeSpan.FromMinutes(2));
            var repeated = await publishing;
            await Load.WaitForTurnsAsync(pool, load.Total, TimeSpan.FromMinutes(3), load);
            output.WriteLine($"{fault}: script {took.TotalSeconds:F1} s; 60 more turns {serving.TotalSeconds:F1} s after it; " +
                             $"{load.Total} turns done {clock.Elapsed.TotalSeconds:F1} s after it; the producer repeated {repeated} unconfirmed publishes");

            var persisted = OrderingChecker.Check(load.Expected, await pool.PersistedCountersAsync());
            Assert.True(persisted is { Reordered: 0, Duplicated: 0, Lost: 0 }, $"after {fault}, persisted turns: {persisted}\n{pool.LogOf(persisted)}");
        }
        finally
        {
            // The topology is shared by the tests after this one: repaired whatever happened here, and only then is the
            // test's database dropped (that needs a primary).
            if (repair is not null)
            {
                await HaTopology.FaultAsync(repair);
            }

            await pool.DisposeAsync();
        }
    }

    private static async Task<TimeSpan> WaitForProgressAsync(WorkersSystem pool, long count, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (await CountOrZeroAsync() < count)
        {
            if (clock.Elapsed > timeout)
            {
                Assert.Fail($"fewer than {count} turns {timeout} after the fault\n{await pool.DiagnoseAsync()}");
            }

            await Task.Delay(100);
        }

        return clock.Elapsed;

        async Task<long> CountOrZeroAsync()
        {
            try
            {
                return await pool.TurnCountAsync();
            }
            catch (Npgsql.NpgsqlException)
            {
                return 0; // no primary yet
            }
        }
    }
}
