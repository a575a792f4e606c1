using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Npgsql;
using RabbitMQ.Client;
using Workers.Benchmarks.Infrastructure;
using Workers.Contracts;
using Workers.Core.Hosting;
using Workers.Core.Messaging;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.Connectors.OpenAI;
using Workers.Core.Sessions;
using Workers.Worker;
using Workers.Worker.Memory;
using Workers.Worker.Model;
using Workers.Worker.Tools;
using Workers.Worker.Turns;

namespace Workers.Benchmarks.Scenarios;

/// <summary>
/// Issue "chat turn": the worker's own cost per turn with the offline model at 0 delay.
/// Phase A, the worker as its own process (as in production) with its PostgreSQL traffic through a counting relay:
/// CPU per turn of every party from /proc, round trips and statements per turn on the wire, and PostgreSQL's own
/// counters. Phase B, the same worker hosted inside this process (WorkerRegistration.AddWorker) while a separate
/// helper process publishes: allocated bytes per turn (GC.GetTotalAllocatedBytes) and Npgsql commands per turn.
/// </summary>
internal static class TurnCost
{
    public static async Task<ScenarioResult> RunAsync(Services services, Options o)
    {
        var turns = o.Int("turns", o.Quick ? 1500 : 5000);
        var perSession = o.Int("requests", 10);
        var sessions = Math.Max(1, turns / perSession);
        turns = sessions * perSession;
        var partitions = o.Int("partitions", 16);
        var tokens = o.Int("tokens", 6);
        var warmup = o.Int("warmup", o.Quick ? 300 : 1000);
        var result = new ScenarioResult("turn-cost");
        var settings = new Dictionary<string, string>
        {
            ["Llm__Offline__Tokens"] = tokens.ToString(CultureInfo.InvariantCulture),
            ["Workers__MaxWaitingPerSession"] = Math.Max(8, perSession).ToString(CultureInfo.InvariantCulture),
        };
        Out.Line($"turn-cost: one worker, {partitions} partitions, {Out.I(turns)} measured turns ({sessions} sessions x {perSession}) " +
                 $"after {Out.I(warmup)} warm-up turns; offline model {tokens} tokens, 0 delay");

        var a = await PhaseAAsync(services, partitions, settings, sessions, perSession, warmup, result);
        var b = await PhaseBAsync(services, partitions, settings, sessions, perSession, warmup);
        await PhaseCAsync(services, tokens, o.Quick ? 500 : 2000, result);

        var summary = result.Add(new Table("Cost of one turn (offline model, 0 delay)", "figure", "per turn", "how"));
        foreach (var (name, value, how) in a.Concat(b))
        {
            summary.Row(name, value, how);
        }

        return result;
    }

    private static async Task<List<(string, string, string)>> PhaseAAsync(Services services, int partitions,
        Dictionary<string, string> settings, int sessions, int perSession, int warmup, ScenarioResult result)
    {
        var rows = new List<(string, string, string)>();
        var turns = sessions * perSession;
        Out.Line("turn-cost A: fresh database and vhost; worker process with its PostgreSQL traffic through the counting relay");
        await using var rig = await WorkersSystem.CreateAsync(services, partitions, settings: settings, recordEvents: false);
        await using var relay = new PgWireCounter(rig.Db.Worker.Host!, rig.Db.Worker.Port);
        var relayed = new NpgsqlConnectionStringBuilder(rig.Db.Worker.ConnectionString)
        {
            Host = "127.0.0.1",
            Port = relay.Port,
            SslMode = SslMode.Disable,
        };
        var statsBefore = await DatabaseStatsAsync(rig.Db);
        var worker = await rig.StartWorkerAsync(new Dictionary<string, string> { ["ConnectionStrings__Postgres"] = relayed.ConnectionString });
        await rig.WaitForBalanceAsync(1, TimeSpan.FromSeconds(60));
        Out.Line($"turn-cost A: worker pid {worker.Pid} owns all {partitions} partitions; {Out.I(warmup)} warm-up turns");
        var warm = Requests(Math.Max(1, warmup / perSession), perSession);
        var clock = Stopwatch.StartNew();
        await rig.Broker.PublishAsync(warm, 4, rig.Broker.Partitioned);
        var warmTurns = warm.Sum(s => s.Count);
        await rig.WaitForTurnsAsync(warmTurns, TimeSpan.FromMinutes(3), clock, "warm-up");

        // Idle traffic (heartbeats, lease renewals) over a few seconds, to subtract from the measured window; after a
        // pause, so the tail of the warm-up (acks, background JIT) is not counted as idle.
        await Task.Delay(3000);
        var idleCpu = CpuSample.Take([("worker", worker.Pid)]);
        var idleWire = relay.Read();
        var idleClock = Stopwatch.StartNew();
        await Task.Delay(3000);
        var idleWireRate = (relay.Read() - idleWire).RoundTrips / idleClock.Elapsed.TotalSeconds;
        var idleCpuRate = CpuSample.Take([("worker", worker.Pid)]).Minus(idleCpu)["worker"].TotalMilliseconds / idleClock.Elapsed.TotalSeconds;
        Out.Line($"turn-cost A: idle worker: {idleWireRate:0.0} round trips/s, {idleCpuRate:0.0} ms CPU/s (subtracted below)");

        var measured = Requests(sessions, perSession);
        var wireBefore = relay.Read();
        var verbsBefore = relay.Verbs();
        var cpuBefore = CpuSample.Take([("worker", worker.Pid)]);
        clock.Restart();
        Out.Line($"turn-cost A: publishing {Out.I(turns)} requests");
        await rig.Broker.PublishAsync(measured, 4, rig.Broker.Partitioned);
        var elapsed = await rig.WaitForTurnsAsync(warmTurns + turns, TimeSpan.FromMinutes(5), clock, "measured");
        var cpu = CpuSample.Take([("worker", worker.Pid)]).Minus(cpuBefore);
        var wire = relay.Read() - wireBefore;
        var verbs = PgWireCounter.Delta(relay.Verbs(), verbsBefore);
        var seconds = elapsed.TotalSeconds;
        Out.Line($"turn-cost A: {Out.I(turns)} turns in {seconds:0.00} s ({turns / seconds:0} turns/s; the relay adds a hop to every statement)");

        // Kill the worker so its backends exit and flush their statistics, then read PostgreSQL's counters.
        await rig.StopProcessesAsync();
        await Task.Delay(1500);
        var statsAfter = await DatabaseStatsAsync(rig.Db);
        var allTurns = warmTurns + turns;

        var cpuTable = result.Add(new Table($"Phase A: CPU per turn by process ({Out.I(turns)} turns in {seconds:0.0} s, {turns / seconds:0} turns/s)",
            "process", "CPU ms per turn", "share of machine busy"));
        var workerMs = cpu["worker"].TotalMilliseconds - idleCpuRate * seconds;
        var machine = cpu["machine (all CPUs busy)"].TotalMilliseconds;
        foreach (var (name, value) in new[]
        {
            ("worker, raw", cpu["worker"].TotalMilliseconds),
            ("worker (idle rate subtracted)", workerMs),
            ("postgres (all backends)", cpu["postgres (all)"].TotalMilliseconds),
            ("rabbitmq (beam.smp)", cpu["rabbitmq (beam.smp)"].TotalMilliseconds),
            ("benchmark (publisher, relay, polling)", cpu["benchmark (this process)"].TotalMilliseconds),
            ("other processes (machine minus the above)", cpu["other (machine minus the above)"].TotalMilliseconds),
            ("machine, all CPUs busy", machine),
        })
        {
            cpuTable.Row(name, Out.F(value / turns, "0.000"), Out.F(100 * value / machine, "0") + " %");
        }

        var roundTrips = (wire.RoundTrips - idleWireRate * seconds) / turns;
        var wireTable = result.Add(new Table("Phase A: the worker's PostgreSQL traffic per turn, on the wire (idle heartbeats subtracted from round trips only)",
            "message", "per turn"));
        wireTable.Row("round trips", Out.F(roundTrips, "0.00"));
        wireTable.Row("Sync (extended-protocol round trips incl. pipelined ones)", Out.F(wire.Sync / (double)turns, "0.00"));
        wireTable.Row("Parse / Bind / Execute", $"{Out.F(wire.Parse / (double)turns, "0.00")} / {Out.F(wire.Bind / (double)turns, "0.00")} / {Out.F(wire.Execute / (double)turns, "0.00")}");
        wireTable.Row("simple Query", Out.F(wire.Query / (double)turns, "0.00"));
        wireTable.Row("bytes to server / to client", $"{Out.F(wire.BytesToServer / (double)turns, "0")} / {Out.F(wire.BytesToClient / (double)turns, "0")}");
        wireTable.Row("new connections during the run", Out.I(wire.Connections));
        foreach (var (verb, count) in verbs)
        {
            wireTable.Row($"statements: {verb} (P = extended Parse, Q = simple Query)", Out.F(count / (double)turns, "0.00"));
        }

        var stats = result.Add(new Table($"Phase A: PostgreSQL counters per turn (pg_stat_database / pg_stat_user_tables over the worker's whole life: {Out.I(allTurns)} turns incl. warm-up, start-up and idle heartbeats)",
            "counter", "per turn"));
        foreach (var (key, value) in statsAfter)
        {
            var delta = value - statsBefore.GetValueOrDefault(key);
            if (delta != 0)
            {
                stats.Row(key, Out.F(delta / (double)allTurns, "0.00"));
            }
        }

        var commits = (statsAfter.GetValueOrDefault("xact_commit") - statsBefore.GetValueOrDefault("xact_commit")) / (double)allTurns;
        rows.Add(("worker CPU", $"{Out.F(workerMs / turns, "0.000")} ms ({Out.F(cpu["worker"].TotalMilliseconds / turns, "0.000")} ms before subtracting the idle rate)",
            $"/proc/PID/stat utime+stime delta over the run; idle rate {Out.F(idleCpuRate, "0")} ms CPU/s measured before; 10 ms ticks"));
        rows.Add(("whole machine CPU (worker + postgres + rabbitmq + benchmark)", $"{Out.F(machine / turns, "0.000")} ms", "/proc/stat busy delta"));
        rows.Add(("PostgreSQL round trips", Out.F(roundTrips, "0.00"), "counting relay on the wire (phase A)"));
        rows.Add(("transactions committed", Out.F(commits, "0.00"), "pg_stat_database.xact_commit, worker lifetime incl. heartbeats"));
        rows.Add(("throughput of this run", $"{Out.F(turns / seconds, "0")} turns/s", "1 worker, through the relay"));
        return rows;
    }

    private static async Task<List<(string, string, string)>> PhaseBAsync(Services services, int partitions,
        Dictionary<string, string> settings, int sessions, int perSession, int warmup)
    {
        var turns = sessions * perSession;
        Out.Line("turn-cost B: fresh database and vhost; the worker hosted in this process, requests from a helper process");
        await using var rig = await WorkersSystem.CreateAsync(services, partitions, settings: settings, recordEvents: false);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = [],
            ContentRootPath = AppContext.BaseDirectory,
            EnvironmentName = "Production",
        });
        builder.Configuration.AddInMemoryCollection(rig.Settings
            .Append(new("Workers__WorkerId", "in-process"))
            .Append(new("Logging__LogLevel__Default", "Warning"))
            .Select(p => new KeyValuePair<string, string?>(p.Key.Replace("__", ":", StringComparison.Ordinal), p.Value)));
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.AddWorker();
        await using var app = builder.Build();
        using var npgsql = new NpgsqlActivityCounter();
        await app.StartAsync();
        try
        {
            await rig.WaitForBalanceAsync(1, TimeSpan.FromSeconds(60));
            Out.Line($"turn-cost B: in-process worker owns all {partitions} partitions; {Out.I(warmup)} warm-up turns");
            var warmSessions = Math.Max(1, warmup / perSession);
            var warmTurns = warmSessions * perSession;
            await PublishFromHelperAsync(rig, warmSessions, perSession, "warm");
            var clock = Stopwatch.StartNew();
            await rig.WaitForTurnsAsync(warmTurns, TimeSpan.FromMinutes(3), clock, "warm-up");

            // Idle allocation rate of this process (worker heartbeats + the polling loop) to subtract.
            var idleBytes = GC.GetTotalAllocatedBytes(true);
            var idleActivities = npgsql.Snapshot();
            var idleClock = Stopwatch.StartNew();
            await using (var poll = await rig.Db.OpenAdminAsync())
            {
                while (idleClock.Elapsed < TimeSpan.FromSeconds(3))
                {
                    await using var count = new NpgsqlCommand("SELECT count(*) FROM workers.turns", poll);
                    await count.ExecuteScalarAsync();
                    await Task.Delay(50);
                }
            }

            var idleRate = (GC.GetTotalAllocatedBytes(true) - idleBytes) / idleClock.Elapsed.TotalSeconds;
            var idleActivityRate = NpgsqlActivityCounter.Delta(npgsql.Snapshot(), idleActivities)
                .ToDictionary(p => p.Key, p => p.Value / idleClock.Elapsed.TotalSeconds);
            Out.Line($"turn-cost B: idle allocation {idleRate / 1024:0} KiB/s (subtracted)");

            var gcBefore = (Gen0: GC.CollectionCount(0), Gen1: GC.CollectionCount(1), Gen2: GC.CollectionCount(2));
            var pauseBefore = GC.GetTotalPauseDuration();
            var bytesBefore = GC.GetTotalAllocatedBytes(true);
            var activitiesBefore = npgsql.Snapshot();
            clock.Restart();
            // The helper publishes from its own process: its allocations are not in this process's count.
            await PublishFromHelperAsync(rig, sessions, perSession, "measured");
            var elapsed = await rig.WaitForTurnsAsync(warmTurns + turns, TimeSpan.FromMinutes(5), clock, "measured");
            var bytes = GC.GetTotalAllocatedBytes(true) - bytesBefore - idleRate * elapsed.TotalSeconds;
            var activities = NpgsqlActivityCounter.Delta(npgsql.Snapshot(), activitiesBefore);
            var gcs = $"gen0 {GC.CollectionCount(0) - gcBefore.Gen0}, gen1 {GC.CollectionCount(1) - gcBefore.Gen1}, gen2 {GC.CollectionCount(2) - gcBefore.Gen2}, " +
                      $"pause {(GC.GetTotalPauseDuration() - pauseBefore).TotalMilliseconds:0} ms";
            Out.Line($"turn-cost B: {Out.I(turns)} turns in {elapsed.TotalSeconds:0.00} s; {bytes / turns / 1024:0.0} KiB allocated per turn; GCs: {gcs}");
            var rows = new List<(string, string, string)>
            {
                ("allocated bytes", $"{Out.F(bytes / turns / 1024, "0.0")} KiB",
                    $"GC.GetTotalAllocatedBytes(precise) delta in-process, idle rate ({Out.F(idleRate / 1024, "0")} KiB/s) × {Out.F(elapsed.TotalSeconds, "0.0")} s subtracted " +
                    $"(= {Out.F(idleRate * elapsed.TotalSeconds / turns / 1024, "0.0")} KiB/turn); {gcs}"),
                ("throughput of this run", $"{Out.F(turns / elapsed.TotalSeconds, "0")} turns/s", "1 in-process worker, direct connection"),
            };
            double commandTotal = 0;
            foreach (var (name, count) in activities.OrderBy(p => p.Key, StringComparer.Ordinal))
            {
                var net = count - idleActivityRate.GetValueOrDefault(name) * elapsed.TotalSeconds;
                commandTotal += net;
                rows.Add(($"Npgsql activity \"{name}\"", Out.F(net / turns, "0.00"), "ActivityListener on \"Npgsql\", idle rate subtracted"));
            }

            rows.Add(("Npgsql commands + batches (all activities)", Out.F(commandTotal / turns, "0.00"), "sum of the above"));
            return rows;
        }
        finally
        {
            await app.StopAsync();
        }
    }

    /// <summary>
    /// Phase C: pieces of a turn in isolation, in this process with nothing else running, one at a time: allocated
    /// bytes (GC.GetTotalAllocatedBytes, precise) and wall time per call. Where phase B's bytes per turn go.
    /// </summary>
    private static async Task PhaseCAsync(Services services, int tokens, int n, ScenarioResult result)
    {
        Out.Line($"turn-cost C: pieces of a turn in isolation, {Out.I(n)} calls each");
        await using var db = await services.CreateDatabaseAsync();
        await using var dataSource = NpgsqlDataSource.Create(db.Worker);
        var store = new SessionStore(dataSource);
        var modelOptions = Microsoft.Extensions.Options.Options.Create(new ModelOptions
        {
            Offline = new OfflineModelOptions { Tokens = tokens, TokenDelay = TimeSpan.Zero },
        });
        var model = new OfflineChatModel(modelOptions);
        var events = new TurnEvents(null!, null!, Microsoft.Extensions.Options.Options.Create(new Workers.Worker.Ordering.WorkerOptions()));
        var session = Guid.NewGuid();
        var request = new ChatRequested { RequestId = Guid.NewGuid(), SessionId = session, UserId = "piece-user", Text = "msg 5 of session 1" };
        var history = Enumerable.Range(1, 4).Select(i => new HistoryTurn(i, $"msg {i} of session 1",
            $"You said: \"msg {i} of session 1\". This is reply {i} in this session. and that is", null)).ToList();
        var counted = history.Select(t => t with { Tokens = TokenCount.Turn("o200k_base", t.User, t.Reply) }).ToList();
        var memory = new ConversationMemory(model, modelOptions);
        var body = JsonSerializer.SerializeToUtf8Bytes(request with { SentAt = DateTimeOffset.UtcNow }, JsonSerializerOptions.Web);
        await using (var scope = await store.BeginAsync(request.UserId, session, CancellationToken.None))
        {
            await using var create = await scope.CommandAsync("INSERT INTO workers.sessions (id, owner_id) VALUES ($1, $2)");
            create.Parameters.Add(new NpgsqlParameter { Value = session });
            create.Parameters.Add(new NpgsqlParameter { Value = request.UserId });
            await create.ExecuteNonQueryAsync();
            await scope.CommitAsync(CancellationToken.None);
        }

        Kernel NewKernel()
        {
            var kernel = new Kernel();
            kernel.Plugins.AddFromObject(new SessionNotesPlugin(store, request.UserId, session), "notes");
            var filter = new ToolEventFilter(new TurnReply(request, 1, events, TimeSpan.FromMilliseconds(40), 200), 16_000);
            kernel.AutoFunctionInvocationFilters.Add(filter);
            kernel.FunctionInvocationFilters.Add(filter);
            return kernel;
        }

        var pieces = new (string Name, Func<Task> Call)[]
        {
            ("RequestParser.Parse (JSON request body)", () => { RequestParser.Parse(body); return Task.CompletedTask; }),
            ("new Kernel + AddFromObject(SessionNotesPlugin) + filter (per turn in ModelCall)", () => { NewKernel(); return Task.CompletedTask; }),
            ("ConversationMemory.Plan + Build (4 earlier turns, their token counts stored)", () =>
            {
                memory.Build(memory.Plan(counted, null, request.Text).Keep, null, request.Text);
                return Task.CompletedTask;
            }),
            ("ConversationMemory.Plan + Build (4 earlier turns counted on load)", () =>
            {
                memory.Build(memory.Plan(history, null, request.Text).Keep, null, request.Text);
                return Task.CompletedTask;
            }),
            ("token count of a committed turn (message + reply, o200k)", () =>
            {
                memory.CountTurn(request.Text, history[0].Reply);
                return Task.CompletedTask;
            }),
            ($"offline model, {tokens} tokens streamed, with that kernel and FunctionChoiceBehavior.Auto()", async () =>
            {
                var settings = new OpenAIPromptExecutionSettings { FunctionChoiceBehavior = FunctionChoiceBehavior.Auto() };
                await foreach (var chunk in model.GetStreamingChatMessageContentsAsync(
                    memory.Build(counted, null, request.Text), settings, NewKernel()))
                {
                    _ = chunk.Content;
                }
            }),
            ("SessionStore.BeginAsync + commit (empty; set_config + EF context)", async () =>
            {
                await using var scope = await store.BeginAsync(request.UserId, session, CancellationToken.None);
                await scope.CommitAsync(CancellationToken.None);
            }),
            ("raw: open + BEGIN + set_config + commit (no EF context)", async () =>
            {
                await using var connection = await dataSource.OpenConnectionAsync();
                await using var transaction = await connection.BeginTransactionAsync();
                await using var set = new NpgsqlCommand(
                    "SELECT set_config('app.user_id', $1, true), set_config('app.session_id', $2, true)", connection, transaction);
                set.Parameters.Add(new NpgsqlParameter { Value = request.UserId });
                set.Parameters.Add(new NpgsqlParameter { Value = session.ToString("D") });
                await set.ExecuteNonQueryAsync();
                await transaction.CommitAsync();
            }),
        };
        var table = result.Add(new Table("Phase C: pieces of a turn in isolation (this process, one call at a time)",
            "piece", "allocated per call", "wall time per call (mean)"));
        foreach (var (name, call) in pieces)
        {
            for (var i = 0; i < 100; i++)
            {
                await call();
            }

            var bytes = GC.GetTotalAllocatedBytes(true);
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < n; i++)
            {
                await call();
            }

            var elapsed = clock.Elapsed.TotalMilliseconds / n;
            var allocated = (GC.GetTotalAllocatedBytes(true) - bytes) / (double)n;
            table.Row(name, $"{Out.F(allocated / 1024, "0.0")} KiB", $"{Out.F(elapsed * 1000, "0")} µs");
            Out.Line($"turn-cost C: {name}: {allocated / 1024:0.0} KiB, {elapsed * 1000:0} µs per call");
        }
    }

    private static List<IReadOnlyList<ChatRequested>> Requests(int sessions, int perSession) =>
        Enumerable.Range(0, sessions).Select(i =>
        {
            var session = Guid.NewGuid();
            return (IReadOnlyList<ChatRequested>)Enumerable.Range(1, perSession)
                .Select(n => Broker.Request(session, $"user-{i}", $"msg {n} of session {i}")).ToList();
        }).ToList();

    private static async Task PublishFromHelperAsync(WorkersSystem rig, int sessions, int perSession, string label)
    {
        await using var helper = HostProcess.StartSelf(["_publish", sessions.ToString(CultureInfo.InvariantCulture),
            perSession.ToString(CultureInfo.InvariantCulture), label], "publisher", rig.Settings);
        await helper.WaitForLogAsync("published", TimeSpan.FromMinutes(3));
    }

    /// <summary><c>_publish SESSIONS PER_SESSION LABEL</c>: publishes requests to the partitions, prints "published N".</summary>
    public static async Task<int> PublishHelperAsync(string[] args)
    {
        var sessions = int.Parse(args[1], CultureInfo.InvariantCulture);
        var perSession = int.Parse(args[2], CultureInfo.InvariantCulture);
        var label = args[3];
        var config = new ConfigurationBuilder().AddEnvironmentVariables().Build();
        var rabbit = config.GetSection(RabbitMqOptions.SectionName).Get<RabbitMqOptions>()!;
        var topology = config.GetSection(TopologyOptions.SectionName).Get<TopologyOptions>()!;
        await using var connection = await BrokerConnections.ConnectAsync(rabbit, "bench-publisher", CancellationToken.None);
        var requests = Enumerable.Range(0, sessions).Select(i =>
        {
            var session = Guid.NewGuid();
            return Enumerable.Range(1, perSession)
                .Select(n => Broker.Request(session, $"{label}-{i}", $"msg {n} of session {i}")).ToList();
        }).ToList();
        await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(true, true));
        var properties = new BasicProperties { ContentType = "application/json", Persistent = true, UserId = rabbit.Username };
        var window = new List<Task>(64);
        for (var n = 0; n < perSession; n++)
        {
            foreach (var session in requests)
            {
                var request = session[n] with { SentAt = DateTimeOffset.UtcNow };
                window.Add(channel.BasicPublishAsync(Partitioning.RequestsExchange, Partitioning.RoutingKey(request.SessionId, topology.Partitions),
                    mandatory: false, properties, JsonSerializer.SerializeToUtf8Bytes(request, JsonSerializerOptions.Web)).AsTask());
                if (window.Count == 64)
                {
                    await Task.WhenAll(window);
                    window.Clear();
                }
            }
        }

        await Task.WhenAll(window);
        Console.WriteLine($"published {sessions * perSession}");
        return 0;
    }

    private static async Task<Dictionary<string, long>> DatabaseStatsAsync(TestDatabase db)
    {
        var stats = new Dictionary<string, long>();
        await using var connection = await db.OpenAdminAsync();
        await using (var command = new NpgsqlCommand(
            """
            SELECT xact_commit, xact_rollback, tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted, blks_hit, blks_read
            FROM pg_stat_database WHERE datname = current_database()
            """, connection))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            await reader.ReadAsync();
            for (var i = 0; i < reader.FieldCount; i++)
            {
                stats[reader.GetName(i)] = reader.GetInt64(i);
            }
        }

        await using (var command = new NpgsqlCommand(
            """
            SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, seq_scan, idx_scan
            FROM pg_stat_user_tables WHERE schemaname = 'workers' ORDER BY relname
            """, connection))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                var table = reader.GetString(0);
                for (var i = 1; i < reader.FieldCount; i++)
                {
                    stats[$"{table}.{reader.GetName(i)}"] = reader.IsDBNull(i) ? 0 : reader.GetInt64(i);
                }
            }
        }

        return stats;
    }
}
