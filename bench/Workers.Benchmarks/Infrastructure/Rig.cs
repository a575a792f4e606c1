using System.Globalization;
using Npgsql;
using Workers.Core.Hosting;

namespace Workers.Benchmarks.Infrastructure;

/// <summary>
/// One run's fresh database, virtual host, broker client and the processes it started, with the settings they share
/// (those of the tests' WorkerPool). Disposing kills the processes, deletes the virtual host and drops the database.
/// </summary>
internal sealed class Rig : IAsyncDisposable
{
    public const string SigningKey = "bench-signing-key-0123456789-0123456789-abcdef";
    private const long LockNamespace = 0x57524B52;
    private readonly Services _services;
    private readonly List<HostProcess> _processes = [];
    private int _started;

    private Rig(Services services, BenchDatabase db, Broker broker, Dictionary<string, string> settings)
    {
        _services = services;
        Db = db;
        Broker = broker;
        Settings = settings;
    }

    public BenchDatabase Db { get; }

    public Services Services => _services;

    public Broker Broker { get; }

    public Dictionary<string, string> Settings { get; }

    public IReadOnlyList<HostProcess> Processes => _processes;

    public int Partitions => Broker.Topology.Partitions;

    public static async Task<Rig> CreateAsync(Services services, int partitions, string queueType = "quorum",
        IReadOnlyDictionary<string, string>? settings = null)
    {
        var db = await services.CreateDatabaseAsync();
        RabbitMqOptions? rabbit = null;
        try
        {
            rabbit = await services.CreateVhostAsync();
            var topology = new TopologyOptions { Partitions = partitions, QueueType = queueType };
            var broker = await Broker.ConnectAsync(rabbit, topology);
            var all = new Dictionary<string, string>
            {
                ["ConnectionStrings__Postgres"] = db.App.ConnectionString,
                ["RabbitMq__Host"] = rabbit.Host,
                ["RabbitMq__Port"] = rabbit.Port.ToString(CultureInfo.InvariantCulture),
                ["RabbitMq__Username"] = rabbit.Username,
                ["RabbitMq__Password"] = rabbit.Password,
                ["RabbitMq__VirtualHost"] = rabbit.VirtualHost,
                ["RabbitMq__ManagementPort"] = rabbit.ManagementPort.ToString(CultureInfo.InvariantCulture),
                ["Workers__Partitions"] = partitions.ToString(CultureInfo.InvariantCulture),
                ["Workers__QueueType"] = queueType,
                ["Workers__HeartbeatInterval"] = "00:00:00.500",
                ["Workers__MemberTimeout"] = "00:00:04",
                ["Llm__Offline__Tokens"] = "6",
                ["Llm__Offline__TokenDelay"] = "00:00:00",
                ["Urls"] = "http://127.0.0.1:0",
                ["ASPNETCORE_ENVIRONMENT"] = "Production",
            };
            foreach (var (key, value) in settings ?? new Dictionary<string, string>())
            {
                all[key] = value;
            }

            return new Rig(services, db, broker, all);
        }
        catch
        {
            if (rabbit is not null)
            {
                await services.DeleteVhostAsync(rabbit.VirtualHost);
            }

            await db.DisposeAsync();
            throw;
        }
    }

    public async Task<HostProcess> StartWorkerAsync(IReadOnlyDictionary<string, string>? extra = null)
    {
        var id = $"w{Interlocked.Increment(ref _started)}";
        var settings = new Dictionary<string, string>(Settings) { ["Workers__WorkerId"] = id };
        foreach (var (key, value) in extra ?? new Dictionary<string, string>())
        {
            settings[key] = value;
        }

        var worker = HostProcess.StartHost("Workers.Worker", id, settings);
        _processes.Add(worker);
        await worker.WaitForLogAsync("ready; health at", TimeSpan.FromSeconds(60));
        return worker;
    }

    public async Task<(HostProcess Process, Uri BaseAddress)> StartNotifierAsync(IReadOnlyDictionary<string, string>? extra = null)
    {
        var port = FreePort();
        var settings = new Dictionary<string, string>(Settings)
        {
            ["Urls"] = $"http://127.0.0.1:{port}",
            ["Auth__SigningKey"] = SigningKey,
        };
        foreach (var (key, value) in extra ?? new Dictionary<string, string>())
        {
            settings[key] = value;
        }

        var process = HostProcess.StartHost("Workers.Notifier", $"notifier{Interlocked.Increment(ref _started)}", settings);
        _processes.Add(process);
        await process.WaitForLogAsync("Notifier ready", TimeSpan.FromSeconds(60));
        return (process, new Uri($"http://127.0.0.1:{port}"));
    }

    /// <summary>A helper process of this benchmark (baseline consumer), which logs "consumer ready" when it is.</summary>
    public async Task<HostProcess> StartSelfAsync(string[] args, string readyText, IReadOnlyDictionary<string, string>? extra = null)
    {
        var settings = new Dictionary<string, string>(Settings);
        foreach (var (key, value) in extra ?? new Dictionary<string, string>())
        {
            settings[key] = value;
        }

        var process = HostProcess.StartSelf(args, $"{args[0]}{Interlocked.Increment(ref _started)}", settings);
        _processes.Add(process);
        await process.WaitForLogAsync(readyText, TimeSpan.FromSeconds(60));
        return process;
    }

    public async Task StopProcessesAsync()
    {
        foreach (var process in _processes)
        {
            await process.DisposeAsync();
        }

        _processes.Clear();
    }

    /// <summary>Waits until <paramref name="workers"/> workers hold all partitions, each ⌊P/N⌋ or ⌈P/N⌉.</summary>
    public async Task<TimeSpan> WaitForBalanceAsync(int workers, TimeSpan timeout)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var owners = new Dictionary<string, int>();
        while (clock.Elapsed < timeout)
        {
            owners.Clear();
            await using (var connection = await Db.OpenAdminAsync())
            await using (var command = new NpgsqlCommand(
                """
                SELECT l.worker_id, count(*)::int FROM workers.partition_leases l
                JOIN pg_locks k ON k.locktype = 'advisory' AND k.granted AND k.classid = $1::oid AND k.objid = l.partition::oid
                    AND k.objsubid = 2 AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                GROUP BY l.worker_id
                """, connection))
            {
                command.Parameters.AddWithValue(LockNamespace);
                await using var reader = await command.ExecuteReaderAsync();
                while (await reader.ReadAsync())
                {
                    owners[reader.GetString(0)] = reader.GetInt32(1);
                }
            }

            var low = Partitions / workers;
            var high = low + (Partitions % workers == 0 ? 0 : 1);
            if (owners.Values.Sum() == Partitions && owners.Count == workers && owners.Values.All(n => n >= low && n <= high))
            {
                return clock.Elapsed;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"not balanced over {workers} workers after {timeout}: " +
            string.Join(", ", owners.Select(o => $"{o.Key}={o.Value}")));
    }

    public async Task<long> TurnCountAsync() => await Db.ScalarAsync<long>("SELECT count(*) FROM workers.turns");

    /// <summary>Polls the persisted turn count until it reaches <paramref name="count"/>; prints progress.</summary>
    public async Task<TimeSpan> WaitForTurnsAsync(long count, TimeSpan timeout, System.Diagnostics.Stopwatch since, string what)
    {
        var nextReport = TimeSpan.FromSeconds(5);
        long seen;
        await using var connection = await Db.OpenAdminAsync();
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

    /// <summary>Counters ("msg N") of each session's persisted complete turns, in turn order.</summary>
    public async Task<Dictionary<Guid, List<int>>> PersistedCountersAsync()
    {
        await using var connection = await Db.OpenAdminAsync();
        await using var command = new NpgsqlCommand(
            "SELECT session_id, user_text FROM workers.turns WHERE status = 'complete' ORDER BY session_id, turn_no", connection);
        var result = new Dictionary<Guid, List<int>>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var session = reader.GetGuid(0);
            if (!result.TryGetValue(session, out var list))
            {
                result[session] = list = [];
            }

            list.Add(int.Parse(reader.GetString(1).Split(' ')[1], CultureInfo.InvariantCulture));
        }

        return result;
    }

    public async ValueTask DisposeAsync()
    {
        await StopProcessesAsync();
        await Broker.DisposeAsync();
        await _services.DeleteVhostAsync(Broker.Options.VirtualHost);
        NpgsqlConnection.ClearAllPools();
        await Db.DisposeAsync();
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>Per-session order check: counters 1..n in publish order; backward jump = reorder, repeat = duplicate.</summary>
internal static class OrderingCheck
{
    public static (int Reordered, int Duplicated, int Lost, int SessionsAffected) Check(
        IReadOnlyDictionary<Guid, int> expected, IReadOnlyDictionary<Guid, List<int>> observed)
    {
        int reordered = 0, duplicated = 0, lost = 0, affected = 0;
        foreach (var (session, count) in expected)
        {
            var seen = observed.TryGetValue(session, out var list) ? list : [];
            var distinct = new HashSet<int>();
            var highest = 0;
            var bad = false;
            foreach (var counter in seen)
            {
                if (!distinct.Add(counter))
                {
                    duplicated++;
                    bad = true;
                }
                else if (counter < highest)
                {
                    reordered++;
                    bad = true;
                }

                highest = Math.Max(highest, counter);
            }

            var missing = Enumerable.Range(1, count).Count(c => !distinct.Contains(c));
            lost += missing;
            if (bad || missing > 0)
            {
                affected++;
            }
        }

        return (reordered, duplicated, lost, affected);
    }
}
