using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Workers.Benchmarks.Infrastructure;

namespace Workers.Benchmarks.Scenarios;

/// <summary>
/// Issue "notifier": many websocket clients, each a different user with its own session, all streaming a reply at the
/// same time through 2 worker processes and 1 or more notifiers. Deltas delivered per second, delivery latency per event
/// (receive time − the event's <c>sentAt</c>, the worker's publish time), and isolation and completeness checks.
/// </summary>
internal static class Fanout
{
    public static async Task<ScenarioResult> RunAsync(Services services, Options o)
    {
        var clients = o.Int("clients", o.Quick ? 200 : 1000);
        var workers = o.Int("workers", 2);
        var notifiers = o.Int("notifiers", 1);
        var tokens = o.Int("tokens", o.Quick ? 100 : 200);
        var tokenDelay = o.Time("token-delay", TimeSpan.FromMilliseconds(10));
        var deltaInterval = o.Time("delta-interval", TimeSpan.FromMilliseconds(40));
        var batch = o.Int("connect-batch", 50);
        var batchDeltas = o.String("batch-deltas", "false");
        // Open loop: the clients' messages spread over time at this many per second (0: all at once, the burst).
        var rate = o.Int("rate", 0);
        var timeout = TimeSpan.FromSeconds(o.Int("timeout", 150));
        var result = new ScenarioResult("fanout");
        ThreadPool.GetMinThreads(out var minWorker, out var minIo);
        ThreadPool.SetMinThreads(Math.Max(minWorker, 32), Math.Max(minIo, 32));
        Out.Line($"fanout: {clients} SignalR clients (WebSockets, SkipNegotiation), one user and session each; {workers} worker processes, " +
                 $"{notifiers} notifier(s); offline model {tokens} tokens every {tokenDelay.TotalMilliseconds:0} ms, deltas every {deltaInterval.TotalMilliseconds:0} ms, " +
                 $"batched deltas {batchDeltas}");
        await using var rig = await WorkersSystem.CreateAsync(services, 16, recordEvents: false, settings: new Dictionary<string, string>
        {
            ["Llm__Offline__Tokens"] = tokens.ToString(CultureInfo.InvariantCulture),
            ["Llm__Offline__TokenDelay"] = tokenDelay.ToString("c", CultureInfo.InvariantCulture),
            ["Llm__DeltaInterval"] = deltaInterval.ToString("c", CultureInfo.InvariantCulture),
            ["Workers__MaxConcurrentTurns"] = Math.Max(64, clients).ToString(CultureInfo.InvariantCulture),
            ["Workers__PrefetchPerPartition"] = Math.Max(64, clients / 8).ToString(CultureInfo.InvariantCulture),
            ["Workers__BatchDeltas"] = batchDeltas,
            ["Limits__ConcurrentTurns"] = "100",
            ["Limits__MessagesPerMinute"] = "10000",
        });
        var processes = new List<HostProcess>();
        for (var i = 0; i < workers; i++)
        {
            processes.Add(await rig.StartWorkerAsync());
        }

        await rig.WaitForBalanceAsync(workers, TimeSpan.FromSeconds(60));
        // Production, as deployed (the tests start theirs in Development, for the demo page's token endpoint).
        var addresses = new List<Uri>();
        for (var i = 0; i < notifiers; i++)
        {
            var (notifier, address) = await rig.StartNotifierAsync(
                new Dictionary<string, string> { ["ASPNETCORE_ENVIRONMENT"] = "Production" });
            processes.Add(notifier);
            addresses.Add(address);
        }

        Out.Line($"fanout: {workers} workers balanced, notifiers at {string.Join(", ", addresses)} (clients spread over them)");

        var all = new List<Client>(clients);
        try
        {
            var connectClock = Stopwatch.StartNew();
            for (var start = 0; start < clients; start += batch)
            {
                var group = await Task.WhenAll(Enumerable.Range(start, Math.Min(batch, clients - start))
                    .Select(i => Client.ConnectAsync(addresses[i % addresses.Count], $"fan-user-{i}")));
                all.AddRange(group);
                if (all.Count % 200 == 0 || all.Count == clients)
                {
                    Out.Line($"fanout: {all.Count} clients connected, session created and subscribed ({connectClock.Elapsed.TotalSeconds:0.0} s)");
                }
            }

            var rounds = o.Int("rounds", 2);
            for (var round = 1; round <= rounds; round++)
            {
                foreach (var c in all)
                {
                    c.Reset();
                }

                var label = round == 1 ? "round 1: first message, cold worker connection pools" : $"round {round}: warm";
                Out.Line($"fanout: {label}");
                // After a round, long enough for the management API's queue figures (refreshed every ~5 s) to catch up.
                await Task.Delay(round == 1 ? 1000 : 7000);
                var cpuBefore = CpuSample.Take(processes.Select(p => (p.Id.StartsWith('w') ? "workers" : "notifier", p.Pid)));
                var clock = Stopwatch.StartNew();
                var sendStart = DateTime.UtcNow;
                Out.Line(rate > 0 ? $"fanout: {clients} clients send one each, {rate} a second" : $"fanout: all {clients} clients send at once");
                using var sampling = new CancellationTokenSource();
                var depths = SampleQueuesAsync(services, rig.Broker.Options.VirtualHost, sampling.Token);
                await Task.WhenAll(all.Select((c, i) => rate > 0 ? SendAtAsync(c, clock, TimeSpan.FromSeconds(i / (double)rate)) : c.SendAsync()));
                Out.Line($"fanout: {clients} SendMessage calls returned after {clock.Elapsed.TotalSeconds:0.00} s");
                var next = TimeSpan.FromSeconds(5);
                while (all.Any(c => !c.Finished))
                {
                    if (clock.Elapsed > timeout)
                    {
                        Out.Line($"fanout: timed out after {timeout}: {all.Count(c => !c.Finished)} clients without their final event");
                        result.Failed = true;
                        break;
                    }

                    if (clock.Elapsed > next)
                    {
                        Out.Line($"fanout: {all.Count(c => c.Finished)} of {clients} turns completed at the clients, " +
                                 $"{Out.I(all.Sum(c => c.Deltas))} deltas received");
                        next += TimeSpan.FromSeconds(5);
                    }

                    await Task.Delay(20);
                }

                var cpu = CpuSample.Take(processes.Select(p => (p.Id.StartsWith('w') ? "workers" : "notifier", p.Pid))).Minus(cpuBefore);
                await sampling.CancelAsync();
                var (notifierQueue, requestQueues) = await depths;
                Out.Line($"fanout: deepest backlog seen: notifier's event queue {Out.I(notifierQueue)}, partition queues together {Out.I(requestQueues)}");
                var events = all.SelectMany(c => c.Events).ToList();
                var lastFinal = all.Where(c => c.FinishedAt is not null).Select(c => c.FinishedAt!.Value).DefaultIfEmpty(DateTime.UtcNow).Max();
                var streaming = (lastFinal - sendStart).TotalSeconds;
                // A client that fell behind gets a turn's queued deltas merged into one (text joined, last seq): the worker's
                // deltas delivered are counted by the seqs each received delta covers; frames are what arrived.
                var deltas = all.Sum(c => c.Deltas);
                var frames = events.Count(e => e.Type == "ReplyDelta");
                var foreign = all.Sum(c => c.Foreign);
                var completed = all.Count(c => c.Completed);
                var failed = all.Where(c => c.FailedCode is not null).GroupBy(c => c.FailedCode!).Select(g => $"{g.Key} ×{g.Count()}").ToList();
                var outOfOrder = all.Sum(c => c.OutOfOrder);
                var latencyAll = new Distribution(events.Where(e => e.SentAt is not null).Select(e => (e.ReceivedAt - e.SentAt!.Value).TotalMilliseconds));
                var latencyDeltas = new Distribution(events.Where(e => e.Type == "ReplyDelta" && e.SentAt is not null)
                    .Select(e => (e.ReceivedAt - e.SentAt!.Value).TotalMilliseconds));
                var firstDelta = new Distribution(all.Where(c => c.FirstDeltaAt is not null)
                    .Select(c => (c.FirstDeltaAt!.Value - c.SentAt).TotalMilliseconds));
                var turnTime = new Distribution(all.Where(c => c.FinishedAt is not null).Select(c => (c.FinishedAt!.Value - c.SentAt).TotalMilliseconds));
                var missingSentAt = events.Count(e => e.SentAt is null);
                Out.Line($"fanout: {Out.I(deltas)} deltas and {Out.I(events.Count)} events in {streaming:0.00} s = {deltas / streaming:0} deltas/s; " +
                         $"latency all events {latencyAll.Summary()}");
                Out.Line($"fanout: completed {completed}/{clients}; foreign events {foreign}; seq out of order {outOfOrder}; events without sentAt {missingSentAt}" +
                         (failed.Count > 0 ? $"; failed: {string.Join(", ", failed)}" : ""));

                var table = result.Add(new Table($"{label} — {clients} clients {(rate > 0 ? $"starting {rate} turns a second" : "streaming at once")} ({workers} workers, {notifiers} notifier{(notifiers > 1 ? "s" : "")}, {tokens} tokens × {tokenDelay.TotalMilliseconds:0} ms, deltas every {deltaInterval.TotalMilliseconds:0} ms)",
                    "figure", "value"));
                table.Row("streaming phase (first SendMessage → last final event at a client)", $"{Out.F(streaming, "0.00")} s");
                table.Row("worker deltas delivered, all clients (counted by seq)", Out.I(deltas));
                table.Row("ReplyDelta frames received (several merged into one for a client that is behind)", Out.I(frames));
                table.Row("deltas delivered per second", Out.F(deltas / streaming, "0"));
                table.Row("events delivered per second (all types)", Out.F(events.Count / streaming, "0"));
                table.Row("delivery latency, every event (receive − sentAt)", $"p50 {Out.F(latencyAll.P50, "0.0")} ms, p99 {Out.F(latencyAll.P99, "0.0")} ms, max {Out.F(latencyAll.Max, "0.0")} ms");
                table.Row("delivery latency, ReplyDelta only", $"p50 {Out.F(latencyDeltas.P50, "0.0")} ms, p99 {Out.F(latencyDeltas.P99, "0.0")} ms, max {Out.F(latencyDeltas.Max, "0.0")} ms");
                var started = new Distribution(all.Where(c => c.StartedAt is not null).Select(c => (c.StartedAt!.Value - c.SentAt).TotalMilliseconds));
                var workerFirst = new Distribution(all.Where(c => c.WorkerTimes is not null).Select(c => c.WorkerTimes!.Value.FirstTokenMs));
                var workerTotal = new Distribution(all.Where(c => c.WorkerTimes is not null).Select(c => c.WorkerTimes!.Value.TotalMs));
                table.Row("SendMessage → TurnStarted at the client", $"p50 {Out.F(started.P50, "0")} ms, p99 {Out.F(started.P99, "0")} ms, max {Out.F(started.Max, "0")} ms");
                table.Row("worker: request taken → first token (TurnCompleted.firstTokenMs)", $"p50 {Out.F(workerFirst.P50, "0")} ms, p99 {Out.F(workerFirst.P99, "0")} ms, max {Out.F(workerFirst.Max, "0")} ms");
                table.Row("worker: request taken → commit (TurnCompleted.totalMs)", $"p50 {Out.F(workerTotal.P50, "0")} ms, p99 {Out.F(workerTotal.P99, "0")} ms, max {Out.F(workerTotal.Max, "0")} ms");
                table.Row("SendMessage → first delta at the client", $"p50 {Out.F(firstDelta.P50, "0")} ms, p99 {Out.F(firstDelta.P99, "0")} ms, max {Out.F(firstDelta.Max, "0")} ms");
                table.Row("SendMessage → TurnCompleted at the client", $"p50 {Out.F(turnTime.P50, "0")} ms, p99 {Out.F(turnTime.P99, "0")} ms, max {Out.F(turnTime.Max, "0")} ms");
                table.Row("deepest backlog, notifier's event queue (ready + unacked, management API, sampled 1/s)", Out.I(notifierQueue));
                table.Row("deepest backlog, request partition queues together", Out.I(requestQueues));
                table.Row("deltas per turn (mean)", Out.F(deltas / (double)Math.Max(1, completed), "0.0"));
                table.Row("TurnCompleted received / clients", $"{completed} / {clients}" + (failed.Count > 0 ? $" (failed: {string.Join(", ", failed)})" : ""));
                table.Row("events of another user or session received", Out.I(foreign));
                table.Row("events out of seq order at a client", Out.I(outOfOrder));
                table.Row("events without sentAt", Out.I(missingSentAt));
                var cpuTable = result.Add(new Table($"{label} — CPU during the streaming phase", "process", "CPU s", "share of machine busy"));
                var machine = cpu["machine (all CPUs busy)"].TotalSeconds;
                foreach (var key in new[] { "workers", "notifier", "postgres (all)", "rabbitmq (beam.smp)", "benchmark (this process)", "other (machine minus the above)", "machine (all CPUs busy)" })
                {
                    if (cpu.TryGetValue(key, out var value))
                    {
                        cpuTable.Row(key == "benchmark (this process)" ? "benchmark (the 1,000 SignalR clients)" : key, Out.F(value.TotalSeconds, "0.00"),
                            Out.F(100 * value.TotalSeconds / machine, "0") + " %");
                    }
                }

                result.Failed |= foreign > 0 || completed < clients;
            }
        }
        finally
        {
            Out.Line($"fanout: disconnecting {all.Count} clients");
            for (var start = 0; start < all.Count; start += 100)
            {
                await Task.WhenAll(all.Skip(start).Take(100).Select(c => c.DisposeAsync().AsTask()));
            }
        }

        return result;
    }

    private static async Task SendAtAsync(Client client, Stopwatch clock, TimeSpan at)
    {
        if (at > clock.Elapsed)
        {
            await Task.Delay(at - clock.Elapsed);
        }

        await client.SendAsync();
    }

    /// <summary>The largest depth seen of the notifier's queue and of the request queues, sampled every second.</summary>
    private static async Task<(long Notifier, long Requests)> SampleQueuesAsync(Services services, string vhost, CancellationToken stop)
    {
        long notifier = 0, requests = 0;
        while (!stop.IsCancellationRequested)
        {
            try
            {
                var depths = await services.QueueDepthsAsync(vhost);
                notifier = Math.Max(notifier, depths.Where(d => d.Key.Contains("notifier", StringComparison.OrdinalIgnoreCase)).Sum(d => d.Value));
                requests = Math.Max(requests, depths.Where(d => d.Key.StartsWith("workers.chat-requests.p", StringComparison.Ordinal)).Sum(d => d.Value));
                await Task.Delay(1000, stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            catch (HttpRequestException)
            {
                // sample missed
            }
        }

        return (notifier, requests);
    }

    internal sealed class Client : IAsyncDisposable
    {
        private readonly HubConnection _connection;
        private readonly ConcurrentQueue<Received> _events = new();
        private long _lastSeq;
        private int _deltas;

        private Client(HubConnection connection, string userId)
        {
            _connection = connection;
            UserId = userId;
            connection.On<JsonElement>("event", OnEvent);
        }

        public string UserId { get; }

        public Guid SessionId { get; private set; }

        public Guid RequestId { get; private set; }

        public DateTime SentAt { get; private set; }

        public DateTime? FirstDeltaAt { get; private set; }

        public DateTime? StartedAt { get; private set; }

        /// <summary>The worker's own figures from TurnCompleted: taking the request → first token, → commit.</summary>
        public (double FirstTokenMs, double TotalMs)? WorkerTimes { get; private set; }

        public DateTime? FinishedAt { get; private set; }

        public bool Completed { get; private set; }

        public string? FailedCode { get; private set; }

        public bool Finished => FinishedAt is not null;

        public int Foreign { get; private set; }

        public int OutOfOrder { get; private set; }

        public int Deltas => Volatile.Read(ref _deltas);

        public IEnumerable<Received> Events => _events;

        /// <summary>Connects as <paramref name="userId"/> and subscribes to <paramref name="session"/>, or to a new session.</summary>
        public static async Task<Client> ConnectAsync(Uri notifier, string userId, Guid? session = null)
        {
            var token = NotifierProcess.Token(userId);
            var connection = new HubConnectionBuilder()
                .WithUrl(new Uri(notifier, "/hubs/chat"), o =>
                {
                    o.AccessTokenProvider = () => Task.FromResult<string?>(token);
                    o.Transports = HttpTransportType.WebSockets;
                    o.SkipNegotiation = true;
                })
                .Build();
            connection.ServerTimeout = TimeSpan.FromMinutes(2);
            var client = new Client(connection, userId);
            await connection.StartAsync();
            client.SessionId = session ?? (await connection.InvokeAsync<JsonElement>("CreateSession", "bench")).GetProperty("id").GetGuid();
            await connection.InvokeAsync<List<JsonElement>>("Subscribe", client.SessionId.ToString(), 0L);
            return client;
        }

        public async Task SendAsync()
        {
            SentAt = DateTime.UtcNow;
            RequestId = await _connection.InvokeAsync<Guid>("SendMessage", SessionId.ToString(), $"hello from {UserId} at {DateTime.UtcNow:O}", null);
        }

        public async ValueTask DisposeAsync() => await _connection.DisposeAsync();

        /// <summary>Forgets the previous round's events; the seq check carries over (numbers only grow).</summary>
        public void Reset()
        {
            _events.Clear();
            _deltas = 0;
            FirstDeltaAt = StartedAt = FinishedAt = null;
            Completed = false;
            FailedCode = null;
            WorkerTimes = null;
            Foreign = OutOfOrder = 0;
        }

        private void OnEvent(JsonElement e)
        {
            var now = DateTime.UtcNow;
            var type = e.GetProperty("type").GetString() ?? "";
            var session = e.GetProperty("sessionId").GetGuid();
            var user = e.GetProperty("userId").GetString();
            var seq = e.GetProperty("seq").GetInt64();
            DateTime? sentAt = e.TryGetProperty("sentAt", out var s) && s.ValueKind == JsonValueKind.String ? s.GetDateTime().ToUniversalTime() : null;
            _events.Enqueue(new Received(type, now, sentAt));
            if (session != SessionId || user != UserId)
            {
                Foreign++;
                return;
            }

            if (seq <= _lastSeq)
            {
                OutOfOrder++;
            }

            var covered = (int)Math.Max(0, seq - _lastSeq);
            _lastSeq = Math.Max(_lastSeq, seq);
            switch (type)
            {
                case "ReplyDelta":
                    Interlocked.Add(ref _deltas, covered);
                    FirstDeltaAt ??= now;
                    break;
                case "TurnStarted":
                    StartedAt ??= now;
                    break;
                case "TurnCompleted":
                    Completed = true;
                    WorkerTimes = (e.TryGetProperty("firstTokenMs", out var f) ? f.GetDouble() : double.NaN,
                        e.TryGetProperty("totalMs", out var t) ? t.GetDouble() : double.NaN);
                    FinishedAt = now;
                    break;
                case "TurnFailed" or "TurnCancelled":
                    FailedCode = e.TryGetProperty("code", out var c) ? c.GetString() : type;
                    FinishedAt = now;
                    break;
            }
        }
    }

    internal sealed record Received(string Type, DateTime ReceivedAt, DateTime? SentAt);
}
