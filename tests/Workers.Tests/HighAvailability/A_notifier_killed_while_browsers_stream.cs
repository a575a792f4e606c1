using System.Diagnostics;
using System.Text.Json;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.HighAvailability;

/// <summary>
/// Two notifiers on the HA topology, 200 browsers (SignalR clients, each its own user and session) split over them,
/// each streaming three turns; one notifier is SIGKILLed mid-stream. Its browsers do what the chat page does: connect
/// to the other notifier and subscribe again after the last seq they saw. Every browser must end with every turn
/// once, its reply text whole (no gap), and its session's seq only growing (no duplicate, nothing backwards).
/// </summary>
[Collection("ha faults")]
public sealed class A_notifier_killed_while_browsers_stream(HaTopology ha, ITestOutputHelper output) : IClassFixture<HaTopology>
{
    private const int Browsers = 200;
    private const int TurnsEach = 3;

    private sealed class Browser(int index, ChatClient client, Guid session, bool onDoomed)
    {
        public int Index { get; } = index;
        public ChatClient Client { get; set; } = client;
        public Guid Session { get; } = session;
        public bool OnDoomed { get; } = onDoomed;
        public List<Guid> Requests { get; } = [];
        public List<JsonElement> Before { get; } = []; // live events on the killed notifier
        public List<JsonElement> Replay { get; set; } = [];
        public IEnumerable<JsonElement> All => Before.Concat(Replay).Concat(Client.Live);
    }

    [Fact]
    public async Task Browsers_of_a_killed_notifier_resume_on_the_other_with_no_gap_and_no_duplicate()
    {
        var services = ha.Require();
        var phases = Stopwatch.StartNew();
        var pool = await WorkersSystem.CreateAsync(services,
            settings: new Dictionary<string, string> { ["Llm__Offline__TokenDelay"] = "00:00:00.050" }, recordEvents: false);
        try
        {
            await pool.StartWorkerAsync();
            await pool.StartWorkerAsync();
            var notifierSettings = new Dictionary<string, string> { ["Limits__ConcurrentTurns"] = "4" };
            var doomed = await pool.StartNotifierAsync(notifierSettings);
            var survivor = await pool.StartNotifierAsync(notifierSettings);
            output.WriteLine($"database, 2 workers and 2 notifiers up in {phases.Elapsed.TotalSeconds:F1} s");

            var browsers = new Browser[Browsers];
            await Parallel.ForEachAsync(Enumerable.Range(0, Browsers), new ParallelOptions { MaxDegreeOfParallelism = 20 }, async (i, _) =>
            {
                var notifier = i % 2 == 0 ? doomed : survivor;
                var client = await notifier.ConnectAsync($"browser-{i}");
                var session = await client.CreateSessionAsync();
                await client.SubscribeAsync(session);
                browsers[i] = new Browser(i, client, session, notifier == doomed);
            });
            await Parallel.ForEachAsync(browsers, new ParallelOptions { MaxDegreeOfParallelism = 20 }, async (browser, _) =>
            {
                for (var n = 1; n <= TurnsEach; n++)
                {
                    browser.Requests.Add(await browser.Client.SendAsync(browser.Session, $"msg {n} from browser {browser.Index}"));
                }
            });

            // Mid-stream: some of the killed notifier's browsers have seen deltas, most turns are still to come.
            output.WriteLine($"{Browsers} browsers connected and sending after {phases.Elapsed.TotalSeconds:F1} s");
            var victims = browsers.Where(b => b.OnDoomed).ToList();
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (victims.Count(b => b.Client.Live.Any(e => Type(e) == "ReplyDelta")) < victims.Count / 4 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(20);
            }

            doomed.Process.Kill();
            var clock = Stopwatch.StartNew();
            await Parallel.ForEachAsync(victims, new ParallelOptions { MaxDegreeOfParallelism = 20 }, async (b, _) =>
            {
                b.Before.AddRange(b.Client.Live);
                var last = b.Before.Select(Seq).DefaultIfEmpty(0).Max();
                await b.Client.DisposeAsync();
                b.Client = await survivor.ConnectAsync($"browser-{b.Index}");
                b.Replay = await b.Client.SubscribeAsync(b.Session, last);
            });
            var resubscribed = clock.Elapsed;

            foreach (var b in browsers)
            {
                await WaitAsync(() => b.Requests.All(r => b.All.Any(e => Type(e) == "TurnCompleted" && RequestId(e) == r)),
                    TimeSpan.FromSeconds(90), $"browser {b.Index}: every turn completed", () => Seen(b));
            }

            var problems = browsers.SelectMany(Check).ToList();
            output.WriteLine($"{victims.Count} browsers moved to the other notifier and subscribed again within {resubscribed.TotalSeconds:F1} s; " +
                             $"all {Browsers * TurnsEach} turns complete {clock.Elapsed.TotalSeconds:F1} s after the kill; " +
                             $"events per moved browser: {victims.Average(b => b.Before.Count):F0} before, {victims.Average(b => b.Replay.Count):F1} replayed, " +
                             $"{victims.Average(b => b.Client.Live.Count):F0} after; problems: {problems.Count}");
            Assert.True(problems.Count == 0, string.Join('\n', problems.Take(20)));
            foreach (var b in browsers)
            {
                await b.Client.DisposeAsync();
            }
        }
        finally
        {
            var disposing = phases.Elapsed;
            await pool.DisposeAsync();
            output.WriteLine($"stopped and cleaned up in {(phases.Elapsed - disposing).TotalSeconds:F1} s");
        }
    }

    /// <summary>What a browser saw, against the contract: each turn completed once, seq only growing, text whole.</summary>
    private static IEnumerable<string> Check(Browser b)
    {
        var events = b.All.ToList();
        var seqs = events.Select(Seq).Where(s => s != 0).ToList();
        for (var i = 1; i < seqs.Count; i++)
        {
            if (seqs[i] <= seqs[i - 1])
            {
                yield return $"browser {b.Index}: seq {seqs[i]} after {seqs[i - 1]} (duplicate or backwards)";
            }
        }

        var completedOrder = events.Where(e => Type(e) == "TurnCompleted").Select(RequestId).ToList();
        if (!completedOrder.SequenceEqual(b.Requests))
        {
            yield return $"browser {b.Index}: turns completed as [{string.Join(", ", completedOrder.Select(r => b.Requests.IndexOf(r) + 1))}], sent 1..{TurnsEach}";
        }

        foreach (var request in b.Requests.Where(r => !b.Replay.Any(e => Type(e) == "TurnCompleted" && RequestId(e) == r)))
        {
            // Not for a turn that ended while its browser was away: the replay's TurnCompleted carries its whole text.
            // For the others, a snapshot replaces what came before (a replay mid-turn), a delta appends.
            var text = "";
            foreach (var delta in events.Where(e => Type(e) == "ReplyDelta" && RequestId(e) == request))
            {
                var piece = delta.GetProperty("text").GetString();
                text = delta.TryGetProperty("snapshot", out var snapshot) && snapshot.GetBoolean() ? piece : text + piece;
            }

            var final = events.Where(e => Type(e) == "TurnCompleted" && RequestId(e) == request).Select(e => e.GetProperty("text").GetString()).FirstOrDefault();
            if (final is not null && final != text)
            {
                yield return $"browser {b.Index}, turn {b.Requests.IndexOf(request) + 1}: deltas rebuild {text?.Length ?? 0} characters of a " +
                             $"{final.Length}-character reply (a gap); its events: " + string.Join(", ", events.Where(e => RequestId(e) == request)
                                 .Select(e => $"{Type(e)} {Seq(e)}"));
            }
        }
    }

    private static string? Type(JsonElement e) => e.GetProperty("type").GetString();

    private static Guid RequestId(JsonElement e) => e.GetProperty("requestId").GetGuid();

    private static long Seq(JsonElement e) => e.GetProperty("seq").GetInt64();

    /// <summary>For a timeout's message: what the browser saw of each of its requests (types and seqs), and where.</summary>
    private static string Seen(Browser b) =>
        $"{(b.OnDoomed ? "moved" : "stayed")}, {b.Before.Count} events before the kill, {b.Replay.Count} replayed, {b.Client.Live.Count} live; " +
        string.Join("; ", b.Requests.Select((r, i) => $"request {i + 1}: " +
            string.Join(",", b.All.Where(e => RequestId(e) == r).Select(e => $"{Type(e)}@{Seq(e)}"))));

    private static async Task WaitAsync(Func<bool> condition, TimeSpan timeout, string what, Func<string>? explain = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out after {timeout} waiting for {what}{(explain is null ? "" : $": {explain()}")}");
            }

            await Task.Delay(50);
        }
    }
}
