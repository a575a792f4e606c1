using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using Workers.Testing;
using Workers.Tests.Infrastructure;
using Workers.Tests.Ordering;

namespace Workers.Tests.HighAvailability;

/// <summary>
/// The HA topology under steady load: 3 workers and a notifier with browsers on it, fed at 60 % of the rate the same
/// pool was just measured to sustain, for a minute (CI) or ten (<c>WORKERS_HA_LONG=1</c>, the README's fault command).
/// Memory (resident and managed), handles and threads of every host, PostgreSQL's server connections, the broker's connections and the
/// depth of its queues are sampled throughout, written to a CSV and an SVG plot, and must stay flat: the second half
/// of the run may not climb above the first (with a margin for noise). Every request is answered once and in order,
/// and every browser saw each of its session's turns complete once, in order.
/// </summary>
[Collection("ha faults")]
public sealed class A_soak_at_60_percent_of_the_maximum(HaTopology ha, ITestOutputHelper output) : IClassFixture<HaTopology>
{
    private const int Sessions = 200;
    private const int Browsers = 20;

    private static readonly Dictionary<string, string> Settings = new()
    {
        ["Workers__MaxWaitingPerSession"] = "64",
        ["Llm__Offline__TokenDelay"] = "00:00:00.002",
    };

    [Fact]
    public async Task Memory_handles_connections_and_queue_depth_stay_flat_and_every_request_is_answered_in_order()
    {
        var services = ha.Require();
        var (length, every) = Environment.GetEnvironmentVariable("WORKERS_HA_LONG") == "1"
            ? (TimeSpan.FromMinutes(10), TimeSpan.FromSeconds(10))
            : (TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(3));
        await using var pool = await WorkersSystem.CreateAsync(services, settings: Settings, recordEvents: false);
        var hosts = new List<Host>();
        for (var i = 1; i <= 3; i++)
        {
            var worker = await pool.StartWorkerAsync();
            hosts.Add(new Host($"worker{i}", worker, await worker.WorkerAddressAsync()));
        }

        var notifier = await pool.StartNotifierAsync();
        hosts.Add(new Host("notifier", notifier.Process, notifier.BaseAddress));
        await pool.WaitForBalanceAsync(hosts.Take(3).Select(h => h.Process).ToList(), TimeSpan.FromSeconds(30));

        // The maximum: a burst of 1,000 requests over 200 sessions, all published at once.
        var burst = new Load(sessions: Sessions, perSession: 5);
        var clock = Stopwatch.StartNew();
        await burst.PublishAsync(pool.Broker);
        await Load.WaitForTurnsAsync(pool, burst.Total, TimeSpan.FromMinutes(2), burst);
        var maximum = burst.Total / clock.Elapsed.TotalSeconds;
        var rate = 0.6 * maximum;

        // The soak: browsers each watch a session of their own among the load's; the producer paces its publishes.
        var browsers = new List<ChatClient>();
        var watched = new List<Guid>();
        for (var i = 0; i < Browsers; i++)
        {
            var browser = await notifier.ConnectAsync($"user-{i}");
            watched.Add(await browser.CreateSessionAsync($"watched {i}"));
            await browser.SubscribeAsync(watched[i]);
            browsers.Add(browser);
        }

        var perSession = (int)Math.Ceiling(rate * length.TotalSeconds / Sessions);
        var load = new Load(Sessions, perSession, users: Browsers, sessionId: i => i < Browsers ? watched[i] : Guid.NewGuid());
        output.WriteLine($"maximum {maximum:F0} turns/s (1,000 at once); soak at {rate:F0}/s for {length.TotalMinutes:F0} min: {load.Total} requests");

        var samples = new List<Sample>();
        using var stopSampling = new CancellationTokenSource();
        var sampling = SampleAsync(pool, hosts, every, samples, stopSampling.Token);
        var publishedIn = await PublishPacedAsync(pool.Broker, load, rate);
        await Load.WaitForTurnsAsync(pool, burst.Total + load.Total, TimeSpan.FromMinutes(2), load);
        await stopSampling.CancelAsync();
        await sampling;

        var file = WriteResults(samples, $"soak at {rate:F0} turns/s (60 % of {maximum:F0}), {load.Total} requests");
        output.WriteLine($"published in {publishedIn.TotalSeconds:F0} s; {samples.Count} samples: {file}.csv and {file}.svg");
        output.WriteLine(Summary(samples));

        var persisted = OrderingChecker.Check(load.Expected, (await pool.PersistedCountersAsync())
            .Where(s => load.Expected.ContainsKey(s.Key)).ToDictionary());
        Assert.True(persisted is { Reordered: 0, Duplicated: 0, Lost: 0 }, $"persisted turns: {persisted}\n{pool.LogOf(persisted)}");
        await AssertBrowsersSawEveryTurnAsync(browsers, watched, load);
        Assert.All(hosts, h => Assert.True(h.Process.Running, $"{h.Name} exited during the soak"));
        AssertFlat(samples, rate, longRun: length > TimeSpan.FromMinutes(2));

        foreach (var browser in browsers)
        {
            await browser.DisposeAsync();
        }
    }

    /// <summary>Publishes every session's requests in counter order at <paramref name="rate"/> per second in all, from
    /// four producers (a session always on the same one; each publish awaited until the broker confirms it), returning
    /// how long it took.</summary>
    private static async Task<TimeSpan> PublishPacedAsync(Broker broker, Load load, double rate)
    {
        const int Producers = 4;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, Producers).Select(async p =>
        {
            await using var channel = await broker.OpenPublisherAsync();
            var mine = load.Requests.Where((_, i) => i % Producers == p).ToList();
            var sent = 0;
            for (var n = 0; n < load.PerSession; n++)
            {
                foreach (var session in mine)
                {
                    var due = TimeSpan.FromSeconds(sent++ * Producers / rate);
                    if (due > clock.Elapsed)
                    {
                        await Task.Delay(due - clock.Elapsed);
                    }

                    await broker.PublishOnAsync(channel, session[n]);
                }
            }
        }));
        return clock.Elapsed;
    }

    private static async Task AssertBrowsersSawEveryTurnAsync(List<ChatClient> browsers, List<Guid> watched, Load load)
    {
        var seen = new Dictionary<Guid, IReadOnlyList<int>>();
        for (var i = 0; i < browsers.Count; i++)
        {
            await browsers[i].WaitForAsync(live => live.Count(e => e.GetProperty("type").GetString() == "TurnCompleted") >= load.PerSession,
                TimeSpan.FromSeconds(30), $"the {load.PerSession} turns of session {watched[i]}");
            seen[watched[i]] = browsers[i].Live.Where(e => e.GetProperty("type").GetString() == "TurnCompleted")
                .Select(e => WorkersSystem.Counter(load.TextByRequest[e.GetProperty("requestId").GetGuid()])).ToList();
        }

        var delivered = OrderingChecker.Check(watched.ToDictionary(s => s, _ => load.PerSession), seen);
        Assert.True(delivered is { Reordered: 0, Duplicated: 0, Lost: 0 }, $"what the browsers saw: {delivered}");
    }

    /// <summary>
    /// Flat means: after the first fifth (warm-up: JIT, pools filling, the burst's garbage), the last half of the samples
    /// does not climb above the first half by more than noise (resident memory, loosely: the runtime commits memory in
    /// steps that are not objects kept). A leak — a handle, a connection, a buffer per request —
    /// grows with the request count, so at this rate it shows as a climb from one half to the next.
    /// </summary>
    private static void AssertFlat(List<Sample> samples, double rate, bool longRun)
    {
        var steady = samples.Skip(samples.Count / 5).ToList();
        var (first, last) = (steady.Take(steady.Count / 2).ToList(), steady.Skip(steady.Count / 2).ToList());
        Assert.True(first.Count >= 3 && last.Count >= 3, $"too few samples: {samples.Count}");
        foreach (var host in samples[0].Hosts.Keys)
        {
            var (rss0, rss1) = (Median(first, s => s.Hosts[host].RssMiB), Median(last, s => s.Hosts[host].RssMiB));
            Assert.True(rss1 <= rss0 * 1.15 + 24, $"{host}: resident memory climbed from a median {rss0:F0} MiB to {rss1:F0} MiB\n{Summary(samples)}");
            // Objects kept by a leak end up in the long-lived heap (gen2 and the large-object heaps), which stays within a
            // few hundred KiB here while gen0 and gen1 jump by megabytes with the GC's timing. A climb is every sample of
            // the last quarter above every sample of the first by a margin (proved with 16 KiB kept per turn on purpose:
            // a worker's was at most 23.5 MiB in the first quarter of a minute, at least 28.9 in the last).
            var old = steady.Select(s => s.Hosts[host].OldMiB).ToList();
            Assert.True(old.Min() > 0, $"{host}: no managed heap sizes on /metrics (dotnet_gc_last_collection_heap_size_bytes)");
            // A ceiling too: a flat heap can still be far too big (racing first turns each loaded a 40 MiB tokenizer
            // vocabulary once: 130-1,060 MiB per worker, flat, passed the climb rule; 53 MiB with the load done once).
            Assert.True(old.Max() < 160, $"{host}: the long-lived managed heap reached {old.Max():F0} MiB\n{Summary(samples)}");
            var (early, late) = (old.Take(old.Count / 4).Max(), old.Skip(old.Count - old.Count / 4).Min());
            // The notifier's long-lived heap still fills for over a minute (its 20 browsers' connections and buffers
            // reach gen2: 10 -> 16 MiB in each one-minute run, flat at 8-17 over ten), so in the minute CI runs it is
            // held to gross growth only; the ten-minute run holds it to the workers' margin.
            var margin = host == "notifier" && !longRun ? Math.Max(8, early * 0.5) : Math.Max(2, early * 0.1);
            Assert.True(late <= early + margin,
                $"{host}: the long-lived managed heap climbed: at least {late:F1} MiB in the last quarter, at most {early:F1} MiB in the first\n{Summary(samples)}");
            var (fd0, fd1) = (first.Max(s => s.Hosts[host].Handles), last.Max(s => s.Hosts[host].Handles));
            Assert.True(fd1 <= fd0 + 16, $"{host}: open handles climbed from at most {fd0} to {fd1}\n{Summary(samples)}");
            var (th0, th1) = (first.Max(s => s.Hosts[host].Threads), last.Max(s => s.Hosts[host].Threads));
            Assert.True(th1 <= th0 + 16, $"{host}: threads climbed from at most {th0} to {th1}\n{Summary(samples)}");
        }

        Assert.True(last.Max(s => s.PostgresConnections) <= first.Max(s => s.PostgresConnections) + 4,
            $"PostgreSQL server connections climbed\n{Summary(samples)}");
        Assert.True(last.Max(s => s.BrokerConnections) <= first.Max(s => s.BrokerConnections),
            $"broker connections climbed\n{Summary(samples)}");
        // A backlog that builds up is a consumer falling behind; a second's worth of requests in flight is not.
        var (depth0, depth1) = (first.Average(s => s.QueuedMessages), last.Average(s => s.QueuedMessages));
        Assert.True(depth1 <= Math.Max(2 * depth0, rate), $"queued messages climbed from {depth0:F0} to {depth1:F0} on average\n{Summary(samples)}");
    }

    private static double Median(List<Sample> samples, Func<Sample, double> value)
    {
        var sorted = samples.Select(value).Order().ToList();
        return sorted[sorted.Count / 2];
    }

    private static async Task SampleAsync(WorkersSystem pool, List<Host> hosts, TimeSpan every, List<Sample> samples, CancellationToken stop)
    {
        using var http = new HttpClient();
        var clock = Stopwatch.StartNew();
        var vhost = pool.Broker.Options.VirtualHost;
        while (!stop.IsCancellationRequested)
        {
            var at = clock.Elapsed;
            var depths = await pool.Services.QueueDepthsAsync(vhost);
            var connections = await pool.Services.Management.GetFromJsonAsync<List<object>>(
                new Uri($"vhosts/{Uri.EscapeDataString(vhost)}/connections", UriKind.Relative), CancellationToken.None);
            var postgres = await pool.Db.ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()");
            var measured = new Dictionary<string, HostSample>();
            foreach (var host in hosts)
            {
                measured[host.Name] = await HostSample.OfAsync(host, http);
            }

            samples.Add(new Sample(at, measured, postgres, connections?.Count ?? 0, depths.Values.Sum()));
            try
            {
                await Task.Delay(every - (clock.Elapsed - at) is { Ticks: > 0 } wait ? wait : TimeSpan.Zero, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private static string Summary(List<Sample> samples) =>
        string.Join('\n', samples[0].Hosts.Keys.Select(h =>
                $"{h}: RSS {Range(samples, s => s.Hosts[h].RssMiB)} MiB, managed heap {Range(samples, s => s.Hosts[h].ManagedMiB)} MiB (long-lived {Range(samples, s => s.Hosts[h].OldMiB)}), handles {Range(samples, s => s.Hosts[h].Handles)}, " +
                $"threads {Range(samples, s => s.Hosts[h].Threads)}")
            .Append($"PostgreSQL connections {Range(samples, s => s.PostgresConnections)}, broker connections " +
                    $"{Range(samples, s => s.BrokerConnections)}, queued messages {Range(samples, s => s.QueuedMessages)}"));

    private static string Range(List<Sample> samples, Func<Sample, double> value) =>
        $"{samples.Min(value):F0}–{samples.Max(value):F0} (first {value(samples[0]):F0}, last {value(samples[^1]):F0})";

    /// <summary>The samples as CSV and as an SVG of four panels, in <c>TestResults/soak/</c>; returns the path without extension.</summary>
    private static string WriteResults(List<Sample> samples, string title)
    {
        var directory = Path.Combine(Repository.Root, "TestResults", "soak");
        Directory.CreateDirectory(directory);
        var file = Path.Combine(directory, $"soak-{DateTime.UtcNow:yyyyMMdd-HHmmss}");
        var hosts = samples[0].Hosts.Keys.ToList();
        var csv = new StringBuilder("seconds," + string.Join(',', hosts.SelectMany(h => new[] { $"{h}_rss_mib", $"{h}_managed_mib", $"{h}_old_mib", $"{h}_handles", $"{h}_threads" })) +
                                    ",postgres_connections,broker_connections,queued_messages\n");
        foreach (var s in samples)
        {
            csv.AppendLine(string.Join(',', new[] { s.At.TotalSeconds.ToString("F0", CultureInfo.InvariantCulture) }
                .Concat(hosts.SelectMany(h => new[] { $"{s.Hosts[h].RssMiB:F1}", $"{s.Hosts[h].ManagedMiB:F1}", $"{s.Hosts[h].OldMiB:F1}", $"{s.Hosts[h].Handles}", $"{s.Hosts[h].Threads}" }))
                .Concat([$"{s.PostgresConnections}", $"{s.BrokerConnections}", $"{s.QueuedMessages}"])));
        }

        File.WriteAllText(file + ".csv", csv.ToString());
        var panels = new List<(string Title, List<(string Name, Func<Sample, double> Value)> Lines)>
        {
            ("resident memory, MiB", hosts.Select(h => (h, (Func<Sample, double>)(s => s.Hosts[h].RssMiB))).ToList()),
            ("long-lived managed heap (gen2 + large objects) after the last GC, MiB",
                hosts.Select(h => (h, (Func<Sample, double>)(s => s.Hosts[h].OldMiB))).ToList()),
            ("open handles", hosts.Select(h => (h, (Func<Sample, double>)(s => s.Hosts[h].Handles))).ToList()),
            ("connections", [("PostgreSQL server", s => s.PostgresConnections), ("RabbitMQ", s => s.BrokerConnections)]),
            ("queued messages (all queues)", [("queued", s => s.QueuedMessages)]),
        };
        File.WriteAllText(file + ".svg", SoakPlot.Svg(title, samples.Select(s => s.At.TotalSeconds).ToList(),
            panels.Select(p => (p.Title, p.Lines.Select(l => (l.Name, samples.Select(l.Value).ToList())).ToList())).ToList()));
        return file;
    }

    private sealed record Sample(TimeSpan At, Dictionary<string, HostSample> Hosts, long PostgresConnections, int BrokerConnections, long QueuedMessages);

    private sealed record Host(string Name, HostProcess Process, Uri Metrics);

    /// <summary>One process as Linux sees it (resident memory, open file descriptors with sockets, threads) and its
    /// managed heap as .NET reports it on <c>/metrics</c> after the last collection, whole and its long-lived part
    /// (what a leak of objects grows, where resident memory also moves with the GC's own choices).</summary>
    private sealed record HostSample(double RssMiB, double ManagedMiB, double OldMiB, int Handles, int Threads)
    {
        public static async Task<HostSample> OfAsync(Host host, HttpClient http)
        {
            var pid = host.Process.Pid;
            var status = await File.ReadAllLinesAsync($"/proc/{pid}/status");
            long Field(string name) => long.Parse(status.First(l => l.StartsWith(name, StringComparison.Ordinal))[name.Length..]
                .Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            var metrics = await PrometheusText.ScrapeAsync(http, host.Metrics);
            const string Heap = "dotnet_gc_last_collection_heap_size_bytes";
            var old = new[] { "gen2", "loh", "poh" }.Sum(g => metrics.Sum(Heap, ("gc_heap_generation", g)));
            return new HostSample(Field("VmRSS:") / 1024.0, metrics.Sum(Heap) / 1024 / 1024, old / 1024 / 1024,
                Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length, (int)Field("Threads:"));
        }
    }
}
