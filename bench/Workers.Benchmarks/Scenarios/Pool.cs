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
        var timeout = TimeSpan.FromSeconds(o.Int("timeout", 240));
        var baselinePrefetch = (int)Math.Round(prefetchPerPartition * (double)partitions / workers);
        var result = new ScenarioResult("pool");
        Out.Line($"pool: {workers} processes, {partitions} partitions ({queueType} queues), {sessions} sessions x {perSession} requests " +
                 $"= {Out.I(sessions * perSession)} turns per run, offline model {tokens} tokens at 0 delay, {rounds} round(s) A/B");
        Out.Line($"  A ordered: Workers__PrefetchPerPartition={prefetchPerPartition}, Workers__MaxConcurrentTurns={concurrency}");
        Out.Line($"  B baseline: one {queueType} queue, prefetch {baselinePrefetch} per consumer (= {prefetchPerPartition} x {partitions}/{workers}), concurrency {concurrency}");

        var runs = new List<RunResult>();
        for (var round = 1; round <= rounds; round++)
        {
            foreach (var ordered in new[] { true, false })
            {
                var run = await RunOnceAsync(services, ordered, round, workers, partitions, sessions, perSession, tokens,
                    prefetchPerPartition, baselinePrefetch, concurrency, producers, queueType, timeout);
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

        var a = runs.Where(r => r.Ordered).Select(r => r.TurnsPerSecond).ToList();
        var b = runs.Where(r => !r.Ordered).Select(r => r.TurnsPerSecond).ToList();
        var summary = result.Add(new Table("Summary", "figure", "value"));
        summary.Row("A ordered turns/s (mean; min–max)", $"{Out.F(a.Average(), "0")} ({Out.F(a.Min(), "0")}–{Out.F(a.Max(), "0")})");
        summary.Row("B competing consumers turns/s (mean; min–max)", $"{Out.F(b.Average(), "0")} ({Out.F(b.Min(), "0")}–{Out.F(b.Max(), "0")})");
        summary.Row("A/B throughput ratio", Out.F(a.Average() / b.Average(), "0.00"));
        summary.Row("A reorders (all runs)", Out.I(runs.Where(r => r.Ordered).Sum(r => r.Reordered)));
        summary.Row("B reorders (all runs)", Out.I(runs.Where(r => !r.Ordered).Sum(r => r.Reordered)));
        result.Notes.Add("Latency is enqueue (the request's `sentAt`, stamped as it is published) → the TurnCompleted envelope's `sentTime` " +
                         "(the worker's publish). All requests are published at once (closed burst), so latency is dominated by " +
                         "queueing behind the backlog: compare A with B, not with the anchors' per-message transit figures.");
        result.Failed = runs.Any(r => r.Ordered && (r.Reordered > 0 || r.Duplicated > 0 || r.Lost > 0));
        return result;
    }

    private static async Task<RunResult> RunOnceAsync(Services services, bool ordered, int round, int workers, int partitions,
        int sessions, int perSession, int tokens, int prefetchPerPartition, int baselinePrefetch, int concurrency, int producers,
        string queueType, TimeSpan timeout)
    {
        var name = $"{(ordered ? "A ordered" : "B baseline")} #{round}";
        Out.Line($"{name}: fresh database and vhost");
        await using var rig = await Rig.CreateAsync(services, partitions, queueType, new Dictionary<string, string>
        {
            ["Llm__Offline__Tokens"] = tokens.ToString(CultureInfo.InvariantCulture),
            ["Workers__PrefetchPerPartition"] = prefetchPerPartition.ToString(CultureInfo.InvariantCulture),
            ["Workers__MaxConcurrentTurns"] = concurrency.ToString(CultureInfo.InvariantCulture),
            ["Workers__MaxWaitingPerSession"] = Math.Max(8, perSession).ToString(CultureInfo.InvariantCulture),
        });
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

        await using var tap = await EventTap.StartAsync(rig.Broker.Connection);
        var requests = Enumerable.Range(0, sessions).Select(i =>
        {
            var session = Guid.NewGuid();
            return (IReadOnlyList<ChatRequested>)Enumerable.Range(1, perSession)
                .Select(n => Infrastructure.Broker.Request(session, $"user-{i}", $"msg {n} of session {i}")).ToList();
        }).ToList();
        var sentAt = new ConcurrentDictionary<Guid, DateTimeOffset>();
        var total = sessions * perSession;
        // Let the idle start-up settle before sampling CPU.
        await Task.Delay(1000);
        var cpuBefore = CpuSample.Take(consumers.Select(c => ("consumers", c.Pid)));
        var clock = Stopwatch.StartNew();
        Out.Line($"{name}: publishing {Out.I(total)} requests on {producers} channels");
        var publishing = rig.Broker.PublishAsync(requests, producers,
            ordered ? rig.Broker.Partitioned : _ => ("", BaselineQueue), r => sentAt[r.RequestId] = r.SentAt!.Value);
        await publishing;
        var published = clock.Elapsed;
        Out.Line($"{name}: published in {published.TotalSeconds:0.0} s ({total / published.TotalSeconds:0} msg/s)");
        var elapsed = await rig.WaitForTurnsAsync(total, timeout, clock, name);
        var cpu = CpuSample.Take(consumers.Select(c => ("consumers", c.Pid))).Minus(cpuBefore);
        Out.Line($"{name}: {Out.I(total)} turns persisted in {elapsed.TotalSeconds:0.00} s = {total / elapsed.TotalSeconds:0} turns/s");

        // The last TurnCompleted events may still be on their way to the tap.
        var wait = Stopwatch.StartNew();
        while (tap.Events.Count(e => e.Type == nameof(TurnCompleted)) < total && wait.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(100);
        }

        var completed = tap.Events.Where(e => e.Type == nameof(TurnCompleted)).DistinctBy(e => e.RequestId).ToList();
        var latency = new Distribution(completed.Where(e => sentAt.ContainsKey(e.RequestId))
            .Select(e => (e.SentTime - sentAt[e.RequestId].UtcDateTime).TotalMilliseconds));
        var persisted = await rig.PersistedCountersAsync();
        var check = OrderingCheck.Check(requests.ToDictionary(r => r[0].SessionId, r => r.Count), persisted);
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

        return new RunResult(name, ordered, total, total / elapsed.TotalSeconds, latency, check.Reordered, check.Duplicated, check.Lost,
            check.SessionsAffected, cpu);
    }

    private sealed record RunResult(string Name, bool Ordered, int Turns, double TurnsPerSecond, Distribution Latency, int Reordered,
        int Duplicated, int Lost, int Affected, IReadOnlyDictionary<string, TimeSpan> Cpu)
    {
        public double CpuPerTurn(string who) => Cpu.TryGetValue(who, out var t) ? t.TotalMilliseconds / Turns : double.NaN;
    }
}
