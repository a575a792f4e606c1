using System.Globalization;
using Workers.Benchmarks.Infrastructure;

namespace Workers.Benchmarks.Scenarios;

/// <summary>
/// Issue "performance", stalled client: a few users stream replies one after another, first alone (phase A), then
/// while one more client subscribes to a busy session with a long history and stops reading its socket (phase B).
/// Their delivery latency (receive − the worker's <c>sentAt</c>) in A and B, whether the notifier closed the stalled
/// connection, and the notifier's resident memory in each phase.
/// </summary>
internal static class Stalled
{
    public static async Task<ScenarioResult> RunAsync(Services services, Options o)
    {
        var clients = o.Int("clients", 8);
        var phase = o.Time("phase", TimeSpan.FromSeconds(o.Quick ? 8 : 20));
        var historyTurns = o.Int("history-turns", 500);
        var replyChars = o.Int("reply-chars", 12_000);
        var queueBytes = o.Int("queue-bytes", 16_384);
        var result = new ScenarioResult("stalled");
        Out.Line($"stalled: {clients} clients streaming one reply after another for {phase.TotalSeconds:0} s without, then with, a client " +
                 $"that subscribed to a busy session of {historyTurns} turns × {replyChars} characters and stopped reading");
        await using var rig = await WorkersSystem.CreateAsync(services, 16, recordEvents: false, settings: new Dictionary<string, string>
        {
            ["Llm__Offline__Tokens"] = "200",
            ["Llm__Offline__TokenDelay"] = "00:00:00.010",
            ["Llm__DeltaInterval"] = "00:00:00.040",
            ["Limits__ConcurrentTurns"] = "100",
            ["Limits__MessagesPerMinute"] = "10000",
            // A replay (6 MB by default) larger than the kernel's send buffer on loopback (up to 4 MiB), so the stalled
            // client backs up into the notifier; with the default 1 MiB cap the kernel alone would hold it.
            ["Limits__MaxReplayChars"] = "8388608",
            // The outbound queue's bound: the busy session streams ~5 KB/s to the stalled client, so the default 1 MiB would
            // take minutes to fill, and SignalR's own 10 s send timeout would close the connection first.
            ["Limits__MaxQueuedBytesPerConnection"] = queueBytes.ToString(CultureInfo.InvariantCulture),
        });
        await rig.StartWorkerAsync();
        await rig.WaitForBalanceAsync(1, TimeSpan.FromSeconds(60));
        var (notifier, address) = await rig.StartNotifierAsync(new Dictionary<string, string> { ["ASPNETCORE_ENVIRONMENT"] = "Production" });
        var users = new List<Fanout.Client>();
        try
        {
            for (var i = 0; i < clients; i++)
            {
                users.Add(await Fanout.Client.ConnectAsync(address, $"steady-{i}"));
            }

            // Warm-up: one turn each, so phase A does not pay the JIT.
            await StreamAsync(users, TimeSpan.Zero);
            var rssIdle = Rss(notifier.Pid);
            var (alone, rssAlone, turnsAlone) = await PhaseAsync(users, phase, notifier.Pid);
            Out.Line($"stalled: phase A (no stalled client): {turnsAlone} turns, latency {alone.Summary()}");

            var busySession = await rig.Db.SeedLongSessionAsync("stalled-user", historyTurns, replyChars);
            var stalled = await StalledClient.SubscribeAndStallAsync(address, NotifierProcess.Token("stalled-user"), busySession);
            await using var busy = await Fanout.Client.ConnectAsync(address, "stalled-user", busySession);
            using var stopBusy = new CancellationTokenSource();
            var busyTurns = KeepBusyAsync(busy, stopBusy.Token);
            var (withStalled, rssStalled, turnsStalled) = await PhaseAsync(users, phase, notifier.Pid);
            await stopBusy.CancelAsync();
            var busyCount = await busyTurns;
            var (closed, _, bytes, drained) = await stalled.DrainAsync(TimeSpan.FromSeconds(15));
            Out.Line($"stalled: the stalled client read back {Out.I(bytes)} bytes, beginning {stalled.FirstReceived}");
            await stalled.DisposeAsync();
            var disconnectLogged = notifier.Log.Any(l => l.Contains("the client is not reading", StringComparison.Ordinal));
            Out.Line($"stalled: phase B (stalled client present): {turnsStalled} turns, latency {withStalled.Summary()}; busy session " +
                     $"streamed {busyCount} turns; the stalled connection {(closed ? "was closed" : "is still open")} after {Out.I(bytes)} bytes read back");

            var ratio = withStalled.P99 / alone.P99;
            var table = result.Add(new Table($"{clients} clients streaming ({phase.TotalSeconds:0} s per phase), one client stalled in phase B " +
                                             $"(subscribed to {historyTurns} turns × {replyChars} chars, the session streaming on)", "figure", "A: alone", "B: with the stalled client"));
            table.Row("turns completed by the steady clients", Out.I(turnsAlone), Out.I(turnsStalled));
            table.Row("delivery latency, steady clients (receive − sentAt)", alone.Summary(), withStalled.Summary());
            table.Row("p99 B / p99 A (target ≤ 1.5)", "", Out.F(ratio, "0.00"));
            table.Row("notifier resident memory (idle → peak in the phase)", $"{Mib(rssIdle)} → {Mib(rssAlone)}", Mib(rssStalled));
            table.Row($"stalled connection closed by the notifier for falling behind (queue bound {Out.I(queueBytes)} bytes)", "",
                closed && disconnectLogged ? "yes" : closed ? "closed, but not for its queue (SignalR's send timeout)" : "NO, still open");
            table.Row("turns streamed in the busy session meanwhile", "", Out.I(busyCount));
            result.Failed |= !closed || !disconnectLogged || double.IsNaN(ratio);
            _ = drained;
        }
        finally
        {
            foreach (var user in users)
            {
                await user.DisposeAsync();
            }
        }

        return result;
    }

    private static async Task<(Distribution Latency, long PeakRss, int Turns)> PhaseAsync(List<Fanout.Client> users, TimeSpan phase, int notifierPid)
    {
        using var stop = new CancellationTokenSource();
        var peak = SamplePeakRssAsync(notifierPid, stop.Token);
        var (latencies, turns) = await StreamAsync(users, phase);
        await stop.CancelAsync();
        return (new Distribution(latencies), await peak, turns);
    }

    /// <summary>Each client sends, waits for its final event, and sends again until <paramref name="duration"/> has passed
    /// (at least one turn each).</summary>
    private static async Task<(List<double> Latencies, int Turns)> StreamAsync(List<Fanout.Client> users, TimeSpan duration)
    {
        var until = DateTime.UtcNow + duration;
        var perClient = await Task.WhenAll(users.Select(async c =>
        {
            var latencies = new List<double>();
            var turns = 0;
            do
            {
                c.Reset();
                await c.SendAsync();
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
                while (!c.Finished && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(10);
                }

                turns += c.Completed ? 1 : 0;
                latencies.AddRange(c.Events.Where(e => e.SentAt is not null).Select(e => (e.ReceivedAt - e.SentAt!.Value).TotalMilliseconds));
            }
            while (DateTime.UtcNow < until);
            return (latencies, turns);
        }));
        return ([.. perClient.SelectMany(p => p.latencies)], perClient.Sum(p => p.turns));
    }

    private static async Task<int> KeepBusyAsync(Fanout.Client busy, CancellationToken stop)
    {
        var turns = 0;
        while (!stop.IsCancellationRequested)
        {
            busy.Reset();
            await busy.SendAsync();
            while (!busy.Finished && !stop.IsCancellationRequested)
            {
                await Task.Delay(10, CancellationToken.None);
            }

            turns += busy.Completed ? 1 : 0;
        }

        return turns;
    }

    private static async Task<long> SamplePeakRssAsync(int pid, CancellationToken stop)
    {
        long peak = 0;
        while (!stop.IsCancellationRequested)
        {
            peak = Math.Max(peak, Rss(pid));
            try
            {
                await Task.Delay(200, stop);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        return peak;
    }

    /// <summary>VmRSS of a process in bytes (0 when it is gone).</summary>
    private static long Rss(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
            return line is null ? 0 : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private static string Mib(long bytes) => $"{Out.F(bytes / 1048576.0, "0")} MiB";
}
