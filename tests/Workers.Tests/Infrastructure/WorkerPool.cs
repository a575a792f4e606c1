using System.Net.Http.Json;
using Npgsql;
using Workers.Core.Hosting;

namespace Workers.Tests.Infrastructure;

/// <summary>
/// A database, a virtual host and the worker processes of one test, with the settings they share. Reads ownership
/// and persisted turns straight from PostgreSQL.
/// </summary>
public sealed class WorkerPool : IAsyncDisposable
{
    private const long LockNamespace = 0x57524B52;
    private readonly ServicesFixture _services;
    private readonly List<WorkerProcess> _workers = [];
    private int _started;

    private WorkerPool(ServicesFixture services, TestDatabase db, Broker broker, EventRecorder events, Dictionary<string, string> settings)
    {
        _services = services;
        Db = db;
        Broker = broker;
        Events = events;
        Settings = settings;
    }

    public TestDatabase Db { get; }

    public Broker Broker { get; }

    public EventRecorder Events { get; }

    public Dictionary<string, string> Settings { get; }

    public int Partitions => Broker.Topology.Partitions;

    public IReadOnlyList<WorkerProcess> Workers => _workers;

    public static async Task<WorkerPool> CreateAsync(ServicesFixture services, int partitions = 16, string queueType = "quorum",
        IReadOnlyDictionary<string, string>? settings = null)
    {
        var db = await services.CreateDatabaseAsync();
        var rabbit = await services.CreateVhostAsync();
        var topology = new TopologyOptions { Partitions = partitions, QueueType = queueType };
        var broker = await Broker.ConnectAsync(rabbit, topology);
        var events = await EventRecorder.StartAsync(broker.Connection);
        var all = new Dictionary<string, string>
        {
            ["ConnectionStrings__Postgres"] = db.App.ConnectionString,
            ["RabbitMq__Host"] = rabbit.Host,
            ["RabbitMq__Port"] = rabbit.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["RabbitMq__Username"] = rabbit.Username,
            ["RabbitMq__Password"] = rabbit.Password,
            ["RabbitMq__VirtualHost"] = rabbit.VirtualHost,
            ["Workers__Partitions"] = partitions.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Workers__QueueType"] = queueType,
            ["Workers__HeartbeatInterval"] = "00:00:00.500",
            ["Workers__MemberTimeout"] = "00:00:04",
            ["Llm__Offline__Tokens"] = "6",
            ["Llm__Offline__TokenDelay"] = "00:00:00",
            ["Urls"] = "http://127.0.0.1:0",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
        {
            all[key] = value;
        }

        return new WorkerPool(services, db, broker, events, all);
    }

    public async Task<WorkerProcess> StartWorkerAsync(IReadOnlyDictionary<string, string>? extra = null)
    {
        var settings = new Dictionary<string, string>(Settings);
        foreach (var (key, value) in extra ?? new Dictionary<string, string>())
        {
            settings[key] = value;
        }

        var worker = WorkerProcess.Start($"w{Interlocked.Increment(ref _started)}", settings);
        _workers.Add(worker);
        await worker.WaitForLogAsync("ready; health at", TimeSpan.FromSeconds(60));
        return worker;
    }

    /// <summary>Test key for the notifier's bearer tokens.</summary>
    public const string SigningKey = "test-signing-key-0123456789-0123456789-abcdef";

    /// <summary>Starts a notifier process on a free loopback port, in Development unless told otherwise.</summary>
    public async Task<NotifierProcess> StartNotifierAsync(IReadOnlyDictionary<string, string>? extra = null)
    {
        var port = FreePort();
        var settings = new Dictionary<string, string>(Settings)
        {
            ["Urls"] = $"http://127.0.0.1:{port}",
            ["ASPNETCORE_ENVIRONMENT"] = "Development",
            ["Auth__SigningKey"] = SigningKey,
        };
        foreach (var (key, value) in extra ?? new Dictionary<string, string>())
        {
            settings[key] = value;
        }

        var process = WorkerProcess.StartHost("Workers.Notifier", $"notifier{Interlocked.Increment(ref _started)}", settings);
        _workers.Add(process);
        await process.WaitForLogAsync("Notifier ready", TimeSpan.FromSeconds(60));
        return new NotifierProcess(process, new Uri($"http://127.0.0.1:{port}"));
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Partitions whose lease is held right now, by the worker id that acquired it.</summary>
    public async Task<IReadOnlyDictionary<string, int>> OwnershipAsync()
    {
        await using var connection = await Db.OpenAdminAsync();
        await using var command = new NpgsqlCommand(
            """
            SELECT l.worker_id, count(*)::int FROM workers.partition_leases l
            JOIN pg_locks k ON k.locktype = 'advisory' AND k.granted AND k.classid = $1::oid AND k.objid = l.partition::oid
                AND k.objsubid = 2 AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            GROUP BY l.worker_id
            """, connection);
        command.Parameters.AddWithValue(LockNamespace);
        var owners = new Dictionary<string, int>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            owners[reader.GetString(0)] = reader.GetInt32(1);
        }

        return owners;
    }

    /// <summary>Waits until exactly the given workers own all partitions, each ⌊P/N⌋ or ⌈P/N⌉; returns how long it took.</summary>
    public async Task<TimeSpan> WaitForBalanceAsync(IReadOnlyCollection<WorkerProcess> live, TimeSpan timeout)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        IReadOnlyDictionary<string, int> owners = new Dictionary<string, int>();
        while (clock.Elapsed < timeout)
        {
            owners = await OwnershipAsync();
            var low = Partitions / live.Count;
            var high = low + (Partitions % live.Count == 0 ? 0 : 1);
            if (owners.Values.Sum() == Partitions && owners.Count == live.Count
                && live.All(w => owners.TryGetValue(w.Id, out var n) && n >= low && n <= high))
            {
                return clock.Elapsed;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"not balanced over {string.Join(",", live.Select(w => w.Id))} after {timeout}: " +
            string.Join(", ", owners.Select(o => $"{o.Key}={o.Value}")));
    }

    /// <summary>Counters (the number in "msg N") of each session's persisted turns, in turn order.</summary>
    public async Task<Dictionary<Guid, IReadOnlyList<int>>> PersistedCountersAsync()
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

            list.Add(Counter(reader.GetString(1)));
        }

        return result.ToDictionary(p => p.Key, p => (IReadOnlyList<int>)p.Value);
    }

    /// <summary>Counters of each session's TurnCompleted events in arrival order, one per (request, seq).</summary>
    public Dictionary<Guid, IReadOnlyList<int>> CompletedCounters(IReadOnlyDictionary<Guid, string> textByRequest) =>
        Events.OfType("TurnCompleted").DistinctBy(e => (e.RequestId, e.Seq)).GroupBy(e => e.SessionId)
            .ToDictionary(g => g.Key, g => (IReadOnlyList<int>)g.Select(e => Counter(textByRequest[e.RequestId])).ToList());

    public static int Counter(string text) =>
        int.Parse(text.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Closes a client's AMQP connection from the broker side, as a network failure would.</summary>
    public async Task CloseBrokerConnectionAsync(string clientName)
    {
        // The management API lists a new connection only after its next statistics refresh (about 5 s).
        System.Text.Json.JsonElement? target = null;
        for (var deadline = DateTime.UtcNow.AddSeconds(20); target is null; await Task.Delay(250))
        {
            Assert.True(DateTime.UtcNow < deadline, $"the broker never listed connection '{clientName}'");
            var connections = await _services.Management.GetFromJsonAsync<List<System.Text.Json.JsonElement>>(
                "connections?columns=name,vhost,client_properties");
            target = connections!.Where(c => c.GetProperty("vhost").GetString() == Broker.Options.VirtualHost
                && c.GetProperty("client_properties").TryGetProperty("connection_name", out var name) && name.GetString() == clientName)
                .Cast<System.Text.Json.JsonElement?>().FirstOrDefault();
        }

        using var request = new HttpRequestMessage(HttpMethod.Delete, $"connections/{Uri.EscapeDataString(target.Value.GetProperty("name").GetString()!)}");
        request.Headers.Add("X-Reason", "test: broker connection lost");
        (await _services.Management.SendAsync(request)).EnsureSuccessStatusCode();
    }

    /// <summary>What a stuck run looks like: each partition queue's ready, unacked and consumers, who owns what, and the
    /// workers' warnings and errors.</summary>
    public async Task<string> DiagnoseAsync()
    {
        var lines = new List<string>();
        var queues = await _services.Management.GetFromJsonAsync<List<System.Text.Json.JsonElement>>(
            $"queues/{Uri.EscapeDataString(Broker.Options.VirtualHost)}?columns=name,messages_ready,messages_unacknowledged,consumers");
        lines.AddRange(queues!.Where(q => q.GetProperty("messages_ready").GetInt32() + q.GetProperty("messages_unacknowledged").GetInt32() > 0)
            .Select(q => $"{q.GetProperty("name")}: ready {q.GetProperty("messages_ready")}, unacked " +
                         $"{q.GetProperty("messages_unacknowledged")}, consumers {q.GetProperty("consumers")}"));
        lines.Add("owners: " + string.Join(", ", (await OwnershipAsync()).Select(o => $"{o.Key}={o.Value}")));
        lines.AddRange(_workers.SelectMany(w => w.Log.Where(l => l.Contains("warn:", StringComparison.Ordinal) || l.Contains("fail:", StringComparison.Ordinal)
            || l.Contains("crit:", StringComparison.Ordinal)).TakeLast(15).Select(l => $"{w.Id}: {l}")));
        return string.Join('\n', lines);
    }

    /// <summary>The workers' log lines about the sessions an ordering report names, to explain a breach.</summary>
    public string LogOf(OrderingReport report)
    {
        var sessions = report.Examples.Select(e => e.Split(':')[0]).Distinct().ToList();
        return string.Join('\n', _workers.SelectMany(w => w.Log.Where(l => sessions.Any(s => l.Contains(s, StringComparison.Ordinal)))
            .Select(l => $"{w.Id}: {l}")).Take(200));
    }

    public async Task<long> TurnCountAsync() => await Db.ScalarAsync<long>("SELECT count(*) FROM workers.turns");

    public async ValueTask DisposeAsync()
    {
        foreach (var worker in _workers)
        {
            await worker.DisposeAsync();
        }

        await Events.DisposeAsync();
        await Broker.DisposeAsync();
        await _services.DeleteVhostAsync(Broker.Options.VirtualHost);
        await Db.DisposeAsync();
    }
}
