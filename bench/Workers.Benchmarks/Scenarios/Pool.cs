using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using RabbitMQ.Client;
using Workers.Benchmarks.Infrastructure;
using Workers.Contracts;

namespace Workers.Benchmarks.Scenarios;

/// <summary>
/// Issue "ordering": throughput and latency of the ordered worker pool (A) against plain competing consumers on one
/// queue (B, <see cref="BaselineConsumer"/>), same machine, interleaved A/B/A/B, with a per-session order check.
/// </summary>
internal static class Pool
{
    private const string BaselineQueue = "bench.baseline-requests";

    public static async Task<ScenarioResult> RunAsync(Services services, Options o)
    {
        var workers = o.Int("workers", 3);
        var partitions = o.Int("partitions", 16);
        var sessions = o.Int("sessions", o.Quick ? 300 : 1000);
        var perSession = o.Int("requests", 10);
        var rounds = o.Int("rounds", o.Quick ? 1 : 2);
        var tokens = o.Int("tokens", 6);
        var prefetchPerPartition = o.Int("prefetch", 64);
        var concurrency = o.Int("concurrency", 64);
        var producers = o.Int("producers", 4);
        var queueType = o.String("queue-type", "quorum");
        // 0 = closed burst (everything published at once: throughput); > 0 = open loop at this many requests per second
        // (latency at a given load, e.g. 60 % of the burst throughput).
        var rate = o.Int("rate", 0);
        var warmup = o.Int("warmup", o.Quick ? 500 : 2000);
        var timeout = TimeSpan.FromSeconds(o.Int("timeout", 120));
        var baselinePrefetch = (int)Math.Round(prefetchPerPartition * (double)partitions / workers);
        var result = new ScenarioResult("pool");
        Out.Line($"pool: {workers} processes, {partitions} partitions ({queueType} queues), {sessions} sessions x {perSession} requests " +
                 $"= {Out.I(sessions * perSession)} turns per run, offline model {tokens} tokens at 0 delay, {rounds} round(s) A/B");
        Out.Line($"  each run: {warmup} warm-up requests on other sessions first, then the measured ones");
        Out.Line(rate > 0 ? $"  open loop: {rate} requests/s" : "  closed burst: all requests published at once");
        Out.Line($"  A ordered: Workers__PrefetchPerPartition={prefetchPerPartition}, Workers__MaxConcurrentTurns={concurrency}");
        Out.Line($"  B baseline: one {queueType} queue, prefetch {baselinePrefetch} per consumer (= {prefetchPerPartition} x {partitions}/{workers}), concurrency {concurrency}");

        var runs = new List<RunResult>();
        for (var round = 1; round <= rounds; round++)
        {
            foreach (var ordered in new[] { true, false })
            {
                var run = await RunOnceAsync(services, ordered, round, workers, partitions, sessions, perSession, tokens,
                    prefetchPerPartition, baselinePrefetch, concurrency, producers, queueType, timeout, rate, warmup);
                runs.Add(run);
            }
        }

        var table = result.Add(new Table("Ordered pool (A) vs plain competing consumers (B)",
            "run", "turns", "turns/s", "enqueue→TurnCompleted p50 ms", "p99 ms", "max ms", "reordered", "duplicated", "lost",
            "sessions affected", "CPU ms/turn: consumers", "postgres", "rabbitmq", "bench", "other", "machine busy"));
        foreach (var r in runs)
        {
            table.Row(r.Name, Out.I(r.Turns), Out.F(r.TurnsPerSecond, "0"), Out.F(r.Latency.P50, "0"), Out.F(r.Latency.P99, "0"),
                Out.F(r.Latency.Max, "0"), Out.I(r.Reordered), Out.I(r.Duplicated), Out.I(r.Lost), Out.I(r.Affected),
                Out.F(r.CpuPerTurn("consumers"), "0.00"), Out.F(r.CpuPerTurn("postgres (all)"), "0.00"),
                Out.F(r.CpuPerTurn("rabbitmq (beam.smp)"), "0.00"), Out.F(r.CpuPerTurn("benchmark (this process)"), "0.00"),
                Out.F(r.CpuPerTurn("other (machine minus the above)"), "0.00"), Out.F(r.CpuPerTurn("machine (all CPUs busy)"), "0.00"));
        }

        // Incomplete runs (a turn never persisted: e.g. PostgreSQL refused connections) stay in the table, not in the summary.
        var latencyTable = result.Add(new Table("Latency from enqueue (request sentAt) to the worker publishing each event (envelope sentTime)",
            "run", "→TurnStarted p50 ms", "p99 ms", "→first ReplyDelta p50 ms", "p99 ms", "→TurnCompleted p50 ms", "p99 ms"));
        foreach (var r in runs)
        {
            latencyTable.Row(r.Name, Out.F(r.ToStarted?.P50 ?? double.NaN, "0.0"), Out.F(r.ToStarted?.P99 ?? double.NaN, "0.0"),
                Out.F(r.ToDelta?.P50 ?? double.NaN, "0.0"), Out.F(r.ToDelta?.P99 ?? double.NaN, "0.0"),
                Out.F(r.Latency.P50, "0.0"), Out.F(r.Latency.P99, "0.0"));
        }

        var a = runs.Where(r => r.Ordered && !r.Incomplete).Select(r => r.TurnsPerSecond).DefaultIfEmpty(double.NaN).ToList();
        var b = runs.Where(r => !r.Ordered && !r.Incomplete).Select(r => r.TurnsPerSecond).DefaultIfEmpty(double.NaN).ToList();
        var summary = result.Add(new Table("Summary", "figure", "value"));
        summary.Row("A ordered turns/s (mean; min–max)", $"{Out.F(a.Average(), "0")} ({Out.F(a.Min(), "0")}–{Out.F(a.Max(), "0")})");
        summary.Row("B competing consumers turns/s (mean; min–max)", $"{Out.F(b.Average(), "0")} ({Out.F(b.Min(), "0")}–{Out.F(b.Max(), "0")})");
        summary.Row("A/B throughput ratio", Out.F(a.Average() / b.Average(), "0.00"));
        summary.Row("A reorders (all runs)", Out.I(runs.Where(r => r.Ordered).Sum(r => r.Reordered)));
        summary.Row("B reorders (all runs)", Out.I(runs.Where(r => !r.Ordered).Sum(r => r.Reordered)));
        result.Notes.Add(rate > 0 ? $"Open loop at {rate} requests/s: throughput is the offered rate when the consumers keep up; the latencies are the figures." :
                         "Latency is enqueue (the request's `sentAt`, stamped as it is published) → the TurnCompleted envelope's `sentTime` " +
                         "(the worker's publish). All requests are published at once (closed burst), so latency is dominated by " +
                         "queueing behind the backlog: compare A with B, not with the anchors' per-message transit figures.");
        result.Failed = runs.Any(r => r.Ordered && (r.Reordered > 0 || r.Duplicated > 0 || r.Lost > 0 || r.Incomplete));
        return result;
    }

    private static async Task<RunResult> RunOnceAsync(Services services, bool ordered, int round, int workers, int partitions,
        int sessions, int perSession, int tokens, int prefetchPerPartition, int baselinePrefetch, int concurrency, int producers,
        string queueType, TimeSpan timeout, int rate, int warmup)
    {
        var name = $"{(ordered ? "A ordered" : "B baseline")} #{round}";
        Out.Line($"{name}: fresh database and vhost");
        await using var rig = await WorkersSystem.CreateAsync(services, partitions, queueType, new Dictionary<string, string>
        {
            ["Llm__Offline__Tokens"] = tokens.ToString(CultureInfo.InvariantCulture),
            ["Workers__PrefetchPerPartition"] = prefetchPerPartition.ToString(CultureInfo.InvariantCulture),
            ["Workers__MaxConcurrentTurns"] = concurrency.ToString(CultureInfo.InvariantCulture),
            ["Workers__MaxWaitingPerSession"] = Math.Max(8, perSession).ToString(CultureInfo.InvariantCulture),
        }, recordEvents: false);
        var consumers = new List<HostProcess>();
        if (ordered)
        {
            for (var i = 0; i < workers; i++)
            {
                consumers.Add(await rig.StartWorkerAsync());
            }

            var balanced = await rig.WaitForBalanceAsync(workers, TimeSpan.FromSeconds(60));
            Out.Line($"{name}: {workers} workers own all {partitions} partitions (balanced after {balanced.TotalSeconds:0.0} s)");
        }
        else
        {
            await using (var channel = await rig.Broker.Connection.CreateChannelAsync())
            {
                await channel.QueueDeclareAsync(BaselineQueue, durable: true, exclusive: false, autoDelete: false,
                    new Dictionary<string, object?> { ["x-queue-type"] = queueType });
            }

            for (var i = 0; i < workers; i++)
            {
                consumers.Add(await rig.StartSelfAsync(["_baseline-consumer", BaselineQueue,
                    baselinePrefetch.ToString(CultureInfo.InvariantCulture), concurrency.ToString(CultureInfo.InvariantCulture)],
                    BaselineConsumer.ReadyText));
            }

            Out.Line($"{name}: {workers} baseline consumer processes on {BaselineQueue}");
        }

        await using var tap = await EventRecorder.StartAsync(rig.Broker.Connection);
        var requests = Enumerable.Range(0, sessions).Select(i =>
        {
            var session = Guid.NewGuid();
            return (IReadOnlyList<ChatRequested>)Enumerable.Range(1, perSession)
                .Select(n => Broker.Request(session, $"user-{i}", $"msg {n} of session {i}")).ToList();
        }).ToList();
        var sentAt = new ConcurrentDictionary<Guid, DateTimeOffset>();
        // Warm-up on other sessions: fresh processes spend their first seconds of load in the JIT (dotnet-counters
        // showed 0.2–0.7 s of JIT per second for ~10 s), and open their connection pools.
        var warmTurns = 0;
        if (warmup > 0)
        {
            var warm = Enumerable.Range(0, Math.Max(1, warmup / perSession)).Select(i =>
            {
                var session = Guid.NewGuid();
                return (IReadOnlyList<ChatRequested>)Enumerable.Range(1, perSession)
                    .Select(n => Broker.Request(session, $"warm-{i}", $"msg {n} of warm-up session {i}")).ToList();
            }).ToList();
            warmTurns = warm.Sum(w => w.Count);
            var warmClock = Stopwatch.StartNew();
            await rig.Broker.PublishAsync(warm, producers, ordered ? rig.Broker.Partitioned : _ => ("", BaselineQueue));
            await WithLogsOnTimeoutAsync(consumers, () => rig.WaitForTurnsAsync(warmTurns, timeout, warmClock, $"{name} warm-up"));
            Out.Line($"{name}: {Out.I(warmTurns)} warm-up turns done in {warmClock.Elapsed.TotalSeconds:0.0} s");
        }

        var total = sessions * perSession;
        // Let the start-up (or warm-up) settle before sampling CPU.
        await Task.Delay(3000);
        var cpuBefore = CpuSample.Take(consumers.Select(c => ("consumers", c.Pid)));
        var clock = Stopwatch.StartNew();
        Out.Line($"{name}: publishing {Out.I(total)} requests on {producers} channels");
        var publishing = rig.Broker.PublishAsync(requests, producers,
            ordered ? rig.Broker.Partitioned : _ => ("", BaselineQueue), r => sentAt[r.RequestId] = r.SentAt!.Value, rate);
        await publishing;
        var published = clock.Elapsed;
        Out.Line($"{name}: published in {published.TotalSeconds:0.0} s ({total / published.TotalSeconds:0} msg/s)");
        TimeSpan elapsed;
        var incomplete = false;
        try
        {
            elapsed = await WithLogsOnTimeoutAsync(consumers, () => rig.WaitForTurnsAsync(warmTurns + total, timeout, clock, name));
        }
        catch (TimeoutException e)
        {
            elapsed = clock.Elapsed;
            incomplete = true;
            Out.Line($"{name}: INCOMPLETE: {e.Message}");
            await DiagnoseAsync(rig, tap, requests, consumers, name);
        }

        var cpu = CpuSample.Take(consumers.Select(c => ("consumers", c.Pid))).Minus(cpuBefore);
        Out.Line($"{name}: {Out.I(total)} turns persisted in {elapsed.TotalSeconds:0.00} s = {total / elapsed.TotalSeconds:0} turns/s");

        // The last TurnCompleted events may still be on their way to the tap.
        var wait = Stopwatch.StartNew();
        while (tap.Events.Count(e => e.Type == nameof(TurnCompleted)) < warmTurns + total && wait.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(100);
        }

        var completed = tap.Events.Where(e => e.Type == nameof(TurnCompleted) && sentAt.ContainsKey(e.RequestId)).DistinctBy(e => e.RequestId).ToList();
        Distribution FirstOf(string type) => new(tap.Events.Where(e => e.Type == type && sentAt.ContainsKey(e.RequestId))
            .GroupBy(e => e.RequestId).Select(g => (g.Min(e => e.SentTime) - sentAt[g.Key].UtcDateTime).TotalMilliseconds));
        var toStarted = FirstOf(nameof(TurnStarted));
        var toDelta = FirstOf(nameof(ReplyDelta));
        Out.Line($"{name}: enqueue→TurnStarted {toStarted.Summary()}; enqueue→first ReplyDelta {toDelta.Summary()}");
        var latency = new Distribution(completed.Where(e => sentAt.ContainsKey(e.RequestId))
            .Select(e => (e.SentTime - sentAt[e.RequestId].UtcDateTime).TotalMilliseconds));
        var persisted = await rig.PersistedCountersAsync();
        // Measured sessions only (the warm-up sessions are checked by the tests, not here).
        var check = OrderingChecker.Check(requests.ToDictionary(r => r[0].SessionId, r => r.Count), persisted);
        Out.Line($"{name}: order check on persisted turns: reordered {check.Reordered}, duplicated {check.Duplicated}, " +
                 $"lost {check.Lost} ({check.SessionsAffected} sessions affected); TurnCompleted seen {completed.Count}; latency {latency.Summary()}");
        foreach (var p in consumers.Where(p => !p.Running))
        {
            Out.Line($"{name}: WARNING {p.Id} exited early:\n{string.Join('\n', p.Log.TakeLast(20))}");
        }

        var errors = consumers.SelectMany(p => p.Log.Where(l => l.Contains("fail", StringComparison.OrdinalIgnoreCase)
            || l.Contains("error", StringComparison.OrdinalIgnoreCase))).Take(5).ToList();
        foreach (var line in errors)
        {
            Out.Line($"{name}: log: {line}");
        }

        if (incomplete)
        {
            name += " (INCOMPLETE, see log)";
        }

        return new RunResult(name, ordered, total, total / elapsed.TotalSeconds, latency, check.Reordered, check.Duplicated, check.Lost,
            check.SessionsAffected, cpu)
        { Incomplete = incomplete, ToStarted = toStarted, ToDelta = toDelta };
    }

    /// <summary>What happened to requests whose turn never got persisted: inbox rows, events, worker logs, error queue.</summary>
    private static async Task DiagnoseAsync(WorkersSystem rig, EventRecorder tap, List<IReadOnlyList<ChatRequested>> requests, List<HostProcess> consumers,
        string name)
    {
        var persisted = await rig.PersistedCountersAsync();
        var missing = requests.SelectMany(r => r.Select((q, i) => (Request: q, Counter: i + 1)))
            .Where(x => !persisted.TryGetValue(x.Request.SessionId, out var list) || !list.Contains(x.Counter)).ToList();
        Out.Line($"{name}: {missing.Count} requests without a persisted turn");
        await using var connection = await rig.Db.OpenAdminAsync();
        foreach (var (request, counter) in missing.Take(10))
        {
            await using var inbox = new Npgsql.NpgsqlCommand(
                "SELECT status, attempts, updated_at FROM workers.inbox WHERE session_id = $1 AND request_id = $2", connection);
            inbox.Parameters.AddWithValue(request.SessionId);
            inbox.Parameters.AddWithValue(request.RequestId);
            await using var reader = await inbox.ExecuteReaderAsync();
            var row = await reader.ReadAsync() ? $"inbox {reader.GetString(0)}, attempts {reader.GetInt32(1)}" : "no inbox row";
            var seen = tap.Events.Where(e => e.RequestId == request.RequestId).Select(e => e.Type).ToList();
            Out.Line($"{name}:   session {request.SessionId} msg {counter} (partition {Partitioning.PartitionOf(request.SessionId, rig.Partitions)}): " +
                     $"{row}; events [{string.Join(", ", seen)}]; persisted counters of the session [{string.Join(",", persisted.GetValueOrDefault(request.SessionId) ?? [])}]");
        }

        try
        {
            var depths = await rig.Services.QueueDepthsAsync(rig.Broker.Options.VirtualHost);
            Out.Line($"{name}: queues not empty: {string.Join(", ", depths.Where(d => d.Value > 0).Select(d => $"{d.Key}={d.Value}"))}");
        }
        catch (HttpRequestException e)
        {
            Out.Line($"{name}: queue depths unavailable: {e.Message}");
        }

        var sessions = missing.Select(m => m.Request.SessionId.ToString()).Distinct().ToList();
        foreach (var consumer in consumers)
        {
            foreach (var line in consumer.Log.Where(l => l.Contains("warn", StringComparison.OrdinalIgnoreCase) || l.Contains("fail", StringComparison.OrdinalIgnoreCase)
                         || l.Contains("error", StringComparison.OrdinalIgnoreCase) || sessions.Any(s => l.Contains(s, StringComparison.Ordinal))).Take(40))
            {
                Out.Line($"{name}:   {consumer.Id}: {line}");
            }
        }
    }

    private sealed record RunResult(string Name, bool Ordered, int Turns, double TurnsPerSecond, Distribution Latency, int Reordered,
        int Duplicated, int Lost, int Affected, IReadOnlyDictionary<string, TimeSpan> Cpu)
    {
        public bool Incomplete { get; init; }

        public Distribution? ToStarted { get; init; }

        public Distribution? ToDelta { get; init; }

        public double CpuPerTurn(string who) => Cpu.TryGetValue(who, out var t) ? t.TotalMilliseconds / Turns : double.NaN;
    }

    /// <summary>A wait that timed out prints what the consumer processes last said (a failed turn says why there).</summary>
    private static async Task<TimeSpan> WithLogsOnTimeoutAsync(IEnumerable<HostProcess> consumers, Func<Task<TimeSpan>> wait)
    {
        try
        {
            return await wait();
        }
        catch (TimeoutException)
        {
            foreach (var consumer in consumers)
            {
                foreach (var line in consumer.Log.TakeLast(10))
                {
                    Out.Line($"  {consumer.Id}: {line}");
                }
            }

            throw;
        }
    }
}
