using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Npgsql;
using Workers.Core.Hosting;
using Workers.Worker.Ordering;

namespace Workers.Testing;

/// <summary>
/// The system under test: a fresh database and virtual host, a broker client on it, the worker, notifier and helper
/// processes started against them, and the settings they share. Reads partition ownership and persisted turns straight
/// from PostgreSQL. Disposing kills the processes, deletes the virtual host and drops the database.
/// </summary>
public sealed class WorkersSystem : IAsyncDisposable
{
    /// <summary>Key of the notifiers' bearer tokens.</summary>
    public const string SigningKey = "test-signing-key-0123456789-0123456789-abcdef";


    private readonly EventRecorder? _events;
    private readonly List<HostProcess> _processes = [];
    private int _started;

    private WorkersSystem(Services services, TestDatabase db, Broker broker, EventRecorder? events, Dictionary<string, string> settings)
    {
        Services = services;
        Db = db;
        Broker = broker;
        _events = events;
        Settings = settings;
    }

    public Services Services { get; }

    public TestDatabase Db { get; }

    public Broker Broker { get; }

    public bool RecordsEvents => _events is not null;

    /// <summary>Every reply event since the system was created.</summary>
    public EventRecorder Events => _events ?? throw new InvalidOperationException("this system was created with recordEvents: false");

    /// <summary>Settings every process gets as environment variables (each start may add or override some). Their
    /// RabbitMq__* login is the admin's; workers and notifiers start with their own (<see cref="Services.Worker"/>,
    /// <see cref="Services.Notifier"/>).</summary>
    public Dictionary<string, string> Settings { get; }

    public int Partitions => Broker.Topology.Partitions;

    /// <summary>Every process started and not stopped yet, workers and notifiers alike.</summary>
    public IReadOnlyList<HostProcess> Processes => _processes;

    /// <summary>
    /// A fresh database and virtual host with the request topology declared; no process runs yet. With
    /// <c>recordEvents: false</c> there is no <see cref="Events"/>: a benchmark that measures CPU or RabbitMQ load says
    /// so, since a recorder is one more consumer of every event.
    /// </summary>
    public static async Task<WorkersSystem> CreateAsync(Services services, int partitions = 16, string queueType = "quorum",
        IReadOnlyDictionary<string, string>? settings = null, bool recordEvents = true)
    {
        ArgumentNullException.ThrowIfNull(services);
        var db = await services.CreateDatabaseAsync();
        RabbitMqOptions? rabbit = null;
        Broker? broker = null;
        try
        {
            rabbit = await services.CreateVhostAsync();
            broker = await Broker.ConnectAsync(rabbit, new TopologyOptions { Partitions = partitions, QueueType = queueType });
            var events = recordEvents ? await EventRecorder.StartAsync(broker.Connection) : null;
            var all = new Dictionary<string, string>
            {
                ["ConnectionStrings__Postgres"] = db.Worker.ConnectionString,
                ["ConnectionStrings__PostgresLeases"] = db.Leases.ConnectionString,
                ["RabbitMq__Nodes"] = rabbit.Nodes ?? "",
                ["RabbitMq__Host"] = rabbit.Host,
                ["RabbitMq__Port"] = rabbit.Port.ToString(CultureInfo.InvariantCulture),
                ["RabbitMq__Username"] = rabbit.Username,
                ["RabbitMq__Password"] = rabbit.Password,
                ["RabbitMq__VirtualHost"] = rabbit.VirtualHost,
                ["RabbitMq__ManagementPort"] = rabbit.ManagementPort.ToString(CultureInfo.InvariantCulture),
                ["RabbitMq__ManagementNodes"] = rabbit.ManagementNodes ?? "",
                ["Workers__Partitions"] = partitions.ToString(CultureInfo.InvariantCulture),
                ["Workers__QueueType"] = queueType,
                ["Workers__HeartbeatInterval"] = "00:00:00.500",
                ["Workers__MemberTimeout"] = "00:00:04",
                ["Llm__Offline__Tokens"] = "6",
                ["Llm__Offline__TokenDelay"] = "00:00:00",
                // #think and #fail stand in for a slow or failing provider; off by default outside Development.
                ["Llm__Offline__Directives"] = "true",
                ["Urls"] = "http://127.0.0.1:0",
                // Not inherited from whatever started the tests or the benchmark.
                ["ASPNETCORE_ENVIRONMENT"] = "Production",
            };
            foreach (var (key, value) in settings ?? new Dictionary<string, string>())
            {
                all[key] = value;
            }

            return new WorkersSystem(services, db, broker, events, all);
        }
        catch
        {
            if (broker is not null)
            {
                await broker.DisposeAsync();
            }

            if (rabbit is not null)
            {
                await services.DeleteVhostAsync(rabbit.VirtualHost);
            }

            await db.DisposeAsync();
            throw;
        }
    }

    /// <summary>Starts a worker (ids w1, w2, ...) and waits until it says it is ready.</summary>
    public async Task<HostProcess> StartWorkerAsync(IReadOnlyDictionary<string, string>? extra = null, TimeSpan? readyWithin = null)
    {
        var id = $"w{Interlocked.Increment(ref _started)}";
        var own = Services.Worker.Settings();
        own["Workers__WorkerId"] = id;
        var worker = HostProcess.StartHost("Workers.Worker", id, With(extra, own));
        _processes.Add(worker);
        await worker.WaitForLogAsync("ready; health at", readyWithin ?? TimeSpan.FromSeconds(60));
        return worker;
    }

    /// <summary>Starts a notifier process on a free loopback port, in Development unless told otherwise.</summary>
    public async Task<NotifierProcess> StartNotifierAsync(IReadOnlyDictionary<string, string>? extra = null)
    {
        var port = FreePort();
        var own = Services.Notifier.Settings();
        own["Urls"] = $"http://127.0.0.1:{port}";
        own["ConnectionStrings__Postgres"] = Db.Notifier.ConnectionString;
        own["ASPNETCORE_ENVIRONMENT"] = "Development";
        own["Auth__SigningKey"] = SigningKey;
        // The admin API on, as run.sh has it: the operator's database login and the broker's monitoring login.
        own["ConnectionStrings__PostgresOperator"] = Db.Operator.ConnectionString;
        own["Operator__ManagementUsername"] = Services.Monitor.Username;
        own["Operator__ManagementPassword"] = Services.Monitor.Password;
        var process = HostProcess.StartHost("Workers.Notifier", $"notifier{Interlocked.Increment(ref _started)}", With(extra, own));
        _processes.Add(process);
        await process.WaitForLogAsync("Notifier ready", TimeSpan.FromSeconds(60));
        return new NotifierProcess(process, new Uri($"http://127.0.0.1:{port}"));
    }

    /// <summary>The running program itself in a helper role (<see cref="HostProcess.StartSelf"/>), ready once it logs
    /// <paramref name="readyText"/>.</summary>
    public async Task<HostProcess> StartSelfAsync(string[] args, string readyText, IReadOnlyDictionary<string, string>? extra = null)
    {
        ArgumentNullException.ThrowIfNull(args);
        var process = HostProcess.StartSelf(args, $"{args[0]}{Interlocked.Increment(ref _started)}", With(extra, []));
        _processes.Add(process);
        await process.WaitForLogAsync(readyText, TimeSpan.FromSeconds(60));
        return process;
    }

    /// <summary>Kills every process started so far.</summary>
    public async Task StopProcessesAsync()
    {
        foreach (var process in _processes)
        {
            await process.DisposeAsync();
        }

        _processes.Clear();
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
        command.Parameters.AddWithValue((long)LeaseLocks.PartitionNamespace);
        var owners = new Dictionary<string, int>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            owners[reader.GetString(0)] = reader.GetInt32(1);
        }

        return owners;
    }

    /// <summary>Waits until exactly the given workers own all partitions, each ⌊P/N⌋ or ⌈P/N⌉; returns how long it took.</summary>
    public Task<TimeSpan> WaitForBalanceAsync(IReadOnlyCollection<HostProcess> live, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(live);
        return WaitForBalanceAsync(live.Count, [.. live.Select(w => w.Id)], timeout);
    }

    /// <summary>Waits until <paramref name="workers"/> workers, whichever, own all partitions, each ⌊P/N⌋ or ⌈P/N⌉.</summary>
    public Task<TimeSpan> WaitForBalanceAsync(int workers, TimeSpan timeout) => WaitForBalanceAsync(workers, null, timeout);

    /// <summary>Counters (the number in "msg N") of each session's persisted complete turns, in turn order.</summary>
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

    /// <summary>N of a request text "msg N ...".</summary>
    public static int Counter(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return int.Parse(text.Split(' ')[1], CultureInfo.InvariantCulture);
    }

    public async Task<long> TurnCountAsync() => await Db.ScalarAsync<long>("SELECT count(*) FROM workers.turns");

    /// <summary>Closes a client's AMQP connection from the broker side, as a network failure would.</summary>
    public async Task CloseBrokerConnectionAsync(string clientName)
    {
        // The management API lists a new connection only after its next statistics refresh (about 5 s).
        JsonElement? target = null;
        for (var deadline = DateTime.UtcNow.AddSeconds(20); target is null; await Task.Delay(250))
        {
            if (DateTime.UtcNow >= deadline)
            {
                throw new TimeoutException($"the broker never listed connection '{clientName}'");
            }

            var connections = await Services.Management.GetFromJsonAsync<List<JsonElement>>(
                "connections?columns=name,vhost,client_properties");
            target = connections!.Where(c => c.GetProperty("vhost").GetString() == Broker.Options.VirtualHost
                && c.GetProperty("client_properties").TryGetProperty("connection_name", out var name) && name.GetString() == clientName)
                .Cast<JsonElement?>().FirstOrDefault();
        }

        var connection = Uri.EscapeDataString(target.Value.GetProperty("name").GetString()!);
        using var request = new HttpRequestMessage(HttpMethod.Delete, $"connections/{connection}");
        request.Headers.Add("X-Reason", "test: broker connection lost");
        (await Services.Management.SendAsync(request)).EnsureSuccessStatusCode();
    }

    /// <summary>What a stuck run looks like: each partition queue's ready, unacked and consumers, who owns what, and the
    /// processes' warnings and errors.</summary>
    public async Task<string> DiagnoseAsync()
    {
        var lines = new List<string>();
        var queues = await Services.Management.GetFromJsonAsync<List<JsonElement>>(
            $"queues/{Uri.EscapeDataString(Broker.Options.VirtualHost)}?columns=name,messages_ready,messages_unacknowledged,consumers");
        lines.AddRange(queues!
            .Where(q => q.GetProperty("messages_ready").GetInt32() + q.GetProperty("messages_unacknowledged").GetInt32() > 0)
            .Select(q => $"{q.GetProperty("name")}: ready {q.GetProperty("messages_ready")}, unacked " +
                         $"{q.GetProperty("messages_unacknowledged")}, consumers {q.GetProperty("consumers")}"));
        lines.Add("owners: " + string.Join(", ", (await OwnershipAsync()).Select(o => $"{o.Key}={o.Value}")));
        lines.AddRange(_processes.SelectMany(w => w.Log.Where(l => l.Contains("warn:", StringComparison.Ordinal)
            || l.Contains("fail:", StringComparison.Ordinal) || l.Contains("crit:", StringComparison.Ordinal))
            .TakeLast(15).Select(l => $"{w.Id}: {l}")));
        if (Environment.GetEnvironmentVariable("WORKERS_TEST_LOGS") is { Length: > 0 } directory)
        {
            lines.Add($"full logs and the broker's queues and channels: {await KeepForDiagnosisAsync(directory)}");
        }

        return string.Join('\n', lines);
    }

    /// <summary>With <c>WORKERS_TEST_LOGS=dir</c>, a stuck run leaves every process's whole log and the broker's view of
    /// its queues (leader, consumers) and channels (unacked, prefetch) in a new folder of <paramref name="directory"/>.</summary>
    private async Task<string> KeepForDiagnosisAsync(string directory)
    {
        var folder = Directory.CreateDirectory(Path.Combine(directory, $"{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Broker.Options.VirtualHost}")).FullName;
        foreach (var process in _processes)
        {
            await File.WriteAllLinesAsync(Path.Combine(folder, $"{process.Id}.log"), process.Log);
            await KeepDumpAsync(process, Path.Combine(folder, $"{process.Id}.dmp"));
        }

        var vhost = Uri.EscapeDataString(Broker.Options.VirtualHost);
        foreach (var (name, path) in new[] { ("queues", $"queues/{vhost}"), ("channels", $"vhosts/{vhost}/channels"), ("connections", $"vhosts/{vhost}/connections") })
        {
            try
            {
                await File.WriteAllTextAsync(Path.Combine(folder, $"{name}.json"), await Services.Management.GetStringAsync(path));
            }
            catch (HttpRequestException e)
            {
                await File.WriteAllTextAsync(Path.Combine(folder, $"{name}.error"), e.Message);
            }
        }

        return folder;
    }

    /// <summary>A memory dump of a stuck process, where <c>dotnet-dump</c> is installed (<c>dotnet tool install -g
    /// dotnet-dump</c>): <c>dotnet-dump analyze FILE -c dumpasync</c> shows what each hung turn awaits.</summary>
    private static async Task KeepDumpAsync(HostProcess process, string file)
    {
        var tool = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".dotnet", "tools", "dotnet-dump");
        if (!File.Exists(tool) || !process.Running)
        {
            return;
        }

        using var stacks = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(tool, ["collect", "--type", "Heap", "-p", process.Pid.ToString(CultureInfo.InvariantCulture), "-o", file])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        })!;
        var output = stacks.StandardOutput.ReadToEndAsync();
        var errors = stacks.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await stacks.WaitForExitAsync(timeout.Token);
        await File.WriteAllTextAsync(file + ".txt", await output + await errors);
    }

    /// <summary>How many lines of all the processes' logs contain every one of <paramref name="texts"/>.</summary>
    public int CountLogLines(params string[] texts) =>
        _processes.Sum(p => p.Log.Count(l => texts.All(text => l.Contains(text, StringComparison.Ordinal))));

    /// <summary>The processes' log lines about the sessions an ordering report names, to explain a breach.</summary>
    public string LogOf(OrderingReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var sessions = report.Examples.Select(e => e.Split(':')[0]).Distinct().ToList();
        return string.Join('\n', _processes.SelectMany(w => w.Log.Where(l => sessions.Any(s => l.Contains(s, StringComparison.Ordinal)))
            .Select(l => $"{w.Id}: {l}")).Take(200));
    }

    public async ValueTask DisposeAsync()
    {
        await StopProcessesAsync();
        if (_events is not null)
        {
            await _events.DisposeAsync();
        }

        await Broker.DisposeAsync();
        await Services.DeleteVhostAsync(Broker.Options.VirtualHost);
        await Db.DisposeAsync();
    }

    private async Task<TimeSpan> WaitForBalanceAsync(int workers, IReadOnlyCollection<string>? ids, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        IReadOnlyDictionary<string, int> owners = new Dictionary<string, int>();
        while (clock.Elapsed < timeout)
        {
            owners = await OwnershipAsync();
            var low = Partitions / workers;
            var high = low + (Partitions % workers == 0 ? 0 : 1);
            if (owners.Values.Sum() == Partitions && owners.Count == workers
                && owners.All(o => (ids is null || ids.Contains(o.Key)) && o.Value >= low && o.Value <= high))
            {
                return clock.Elapsed;
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"not balanced over {(ids is null ? $"{workers} workers" : string.Join(",", ids))} after {timeout}: " +
            string.Join(", ", owners.Select(o => $"{o.Key}={o.Value}")));
    }

    /// <summary>The shared settings, then <paramref name="own"/> (what this kind of process needs), then the caller's.</summary>
    private Dictionary<string, string> With(IReadOnlyDictionary<string, string>? extra, Dictionary<string, string> own)
    {
        var settings = new Dictionary<string, string>(Settings);
        foreach (var (key, value) in own.Concat(extra ?? new Dictionary<string, string>()))
        {
            settings[key] = value;
        }

        return settings;
    }

    /// <summary>A loopback TCP port nobody listens on now.</summary>
    public static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }
}
