using System.Diagnostics;
using Workers.Contracts;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Ordering;

/// <summary>Inside a worker, sessions of one partition run side by side; one session runs one request at a time.</summary>
[Collection("worker pools")]
public sealed class Session_lanes(ServicesFixture services)
{
    private static void Report(string line) => TestContext.Current.TestOutputHelper?.WriteLine(line);

    internal static Guid SessionOnPartition(int partition, int partitions)
    {
        while (true)
        {
            var id = Guid.NewGuid();
            if (Partitioning.PartitionOf(id, partitions) == partition)
            {
                return id;
            }
        }
    }

    [Fact]
    public async Task A_30_second_turn_does_not_delay_100_other_sessions_of_its_partition()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        await pool.StartWorkerAsync();
        var slow = Guid.NewGuid();
        var partition = Partitioning.PartitionOf(slow, pool.Partitions);
        var slowRequest = Broker.Request(slow, "slow-user", "msg 1 #think=30000");
        await pool.Broker.PublishAsync(slowRequest);
        await pool.Events.WaitForAsync(e => e.Any(x => x.RequestId == slowRequest.RequestId && x.Type == "TurnStarted"),
            TimeSpan.FromSeconds(20), "the slow turn to start");

        var fast = Enumerable.Range(0, 100).Select(i => Broker.Request(SessionOnPartition(partition, pool.Partitions), $"user-{i}", "msg 1")).ToList();
        var publishedAt = new Dictionary<Guid, DateTime>();
        foreach (var request in fast)
        {
            publishedAt[request.RequestId] = DateTime.UtcNow;
            await pool.Broker.PublishAsync(request);
        }

        var fastIds = fast.Select(r => r.RequestId).ToHashSet();
        await pool.Events.WaitForAsync(e => e.Count(x => x.Type == "TurnCompleted" && fastIds.Contains(x.RequestId)) == 100,
            TimeSpan.FromSeconds(20), "the 100 fast turns");
        var latencies = pool.Events.OfType("TurnCompleted").Where(e => fastIds.Contains(e.RequestId))
            .Select(e => (e.At - publishedAt[e.RequestId]).TotalMilliseconds).Order().ToList();
        Report($"100 fast sessions beside a 30 s turn on partition {partition}: latency p50 {latencies[49]:F0} ms, " +
               $"p99 {latencies[98]:F0} ms, max {latencies[^1]:F0} ms");
        Assert.DoesNotContain(pool.Events.OfType("TurnCompleted"), e => e.RequestId == slowRequest.RequestId);
        Assert.True(latencies[^1] < 5000, $"slowest fast turn took {latencies[^1]:F0} ms");

        await pool.Events.WaitForAsync(e => e.Any(x => x.Type == "TurnCompleted" && x.RequestId == slowRequest.RequestId),
            TimeSpan.FromSeconds(40), "the slow turn");
    }

    [Fact]
    public async Task The_same_request_id_delivered_twice_at_once_and_again_after_completion_makes_one_turn()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        await pool.StartWorkerAsync();
        var session = Guid.NewGuid();
        var request = Broker.Request(session, "alice", "msg 1");
        await Task.WhenAll(pool.Broker.PublishAsync(request), pool.Broker.PublishAsync(request));
        await pool.Events.WaitForAsync(e => e.Any(x => x.Type == "TurnCompleted" && x.RequestId == request.RequestId),
            TimeSpan.FromSeconds(20), "the turn");
        await pool.Broker.PublishAsync(request);
        var marker = Broker.Request(session, "alice", "msg 2");
        await pool.Broker.PublishAsync(marker);
        await pool.Events.WaitForAsync(e => e.Any(x => x.Type == "TurnCompleted" && x.RequestId == marker.RequestId),
            TimeSpan.FromSeconds(20), "the next turn");

        Assert.Equal(1L, await pool.Db.ScalarAsync<long>($"SELECT count(*) FROM workers.turns WHERE request_id = '{request.RequestId}'"));
        Assert.Single(pool.Events.OfType("TurnCompleted"), e => e.RequestId == request.RequestId);
        Assert.Single(pool.Events.OfType("TurnStarted"), e => e.RequestId == request.RequestId);
        Assert.Equal("complete", await pool.Db.ScalarAsync<string>($"SELECT status FROM workers.inbox WHERE request_id = '{request.RequestId}'"));
    }

    [Fact]
    public async Task Beyond_the_waiting_limit_a_session_gets_session_busy_and_others_are_not_starved()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services, settings: new Dictionary<string, string>
        {
            ["Workers__MaxWaitingPerSession"] = "2",
        });
        await pool.StartWorkerAsync();
        var busy = Guid.NewGuid();
        var requests = Enumerable.Range(1, 6).Select(n => Broker.Request(busy, "alice", n == 1 ? "msg 1 #think=3000" : $"msg {n}")).ToList();
        foreach (var request in requests)
        {
            await pool.Broker.PublishAsync(request);
        }

        var other = Broker.Request(SessionOnPartition(Partitioning.PartitionOf(busy, pool.Partitions), pool.Partitions), "bob", "msg 1");
        var clock = Stopwatch.StartNew();
        await pool.Broker.PublishAsync(other);
        await pool.Events.WaitForAsync(e => e.Any(x => x.Type == "TurnCompleted" && x.RequestId == other.RequestId),
            TimeSpan.FromSeconds(10), "the other session's turn");
        Report($"other session answered in {clock.ElapsedMilliseconds} ms while the busy one waits on a 3 s turn");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2.5));

        await pool.Events.WaitForAsync(e => e.Count(x => x.SessionId == busy && (x.Type is "TurnCompleted" or "TurnFailed")) == 6,
            TimeSpan.FromSeconds(20), "an answer to each of the six requests");
        var refused = pool.Events.OfType("TurnFailed").Where(e => e.SessionId == busy).ToList();
        Assert.All(refused, e => Assert.Equal(ErrorCodes.SessionBusy, e.Code));
        Assert.Equal(requests.Skip(3).Select(r => r.RequestId), refused.Select(e => e.RequestId));
        Assert.Equal([1, 2, 3], (await pool.PersistedCountersAsync())[busy]);
    }

    [Fact]
    public async Task A_cancel_stops_the_running_turn_at_once_keeps_its_partial_text_and_the_next_request_runs()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services, settings: new Dictionary<string, string>
        {
            ["Llm__Offline__Tokens"] = "100",
            ["Llm__Offline__TokenDelay"] = "00:00:00.050",
        });
        await pool.StartWorkerAsync();
        var session = Guid.NewGuid();
        var first = Broker.Request(session, "alice", "msg 1");
        var second = Broker.Request(session, "alice", "msg 2");
        await pool.Broker.PublishAsync(first);
        await pool.Broker.PublishAsync(second);
        await pool.Events.WaitForAsync(e => e.Count(x => x.Type == "ReplyDelta" && x.RequestId == first.RequestId) >= 3,
            TimeSpan.FromSeconds(20), "some reply text");

        var clock = Stopwatch.StartNew();
        await pool.Broker.PublishCancelAsync(new CancelTurn { SessionId = session, RequestId = first.RequestId, UserId = "alice" });
        await pool.Events.WaitForAsync(e => e.Any(x => x.Type == "TurnCancelled" && x.RequestId == first.RequestId),
            TimeSpan.FromSeconds(5), "TurnCancelled");
        Report($"cancel published -> TurnCancelled received: {clock.ElapsedMilliseconds} ms");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"cancel took {clock.ElapsedMilliseconds} ms");

        var cancelled = pool.Events.OfType("TurnCancelled").Single(e => e.RequestId == first.RequestId);
        var deltas = string.Concat(pool.Events.OfType("ReplyDelta").Where(e => e.RequestId == first.RequestId).OrderBy(e => e.Seq).Select(e => e.Text));
        Assert.Equal(deltas, cancelled.Text);
        Assert.Equal($"cancelled|{deltas}", await pool.Db.ScalarAsync<string>(
            $"SELECT status || '|' || reply_text FROM workers.turns WHERE request_id = '{first.RequestId}'"));
        Assert.True(deltas.Split(' ').Length < 100, "the turn stopped before its end");
        await pool.Events.WaitForAsync(e => e.Any(x => x.Type == "TurnCompleted" && x.RequestId == second.RequestId),
            TimeSpan.FromSeconds(20), "the next request");
    }

    [Fact]
    public async Task A_cancel_by_someone_else_is_ignored()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services, settings: new Dictionary<string, string>
        {
            ["Llm__Offline__Tokens"] = "20",
            ["Llm__Offline__TokenDelay"] = "00:00:00.050",
        });
        await pool.StartWorkerAsync();
        var request = Broker.Request(Guid.NewGuid(), "alice", "msg 1");
        await pool.Broker.PublishAsync(request);
        await pool.Events.WaitForAsync(e => e.Any(x => x.Type == "ReplyDelta" && x.RequestId == request.RequestId),
            TimeSpan.FromSeconds(20), "some reply text");
        await pool.Broker.PublishCancelAsync(new CancelTurn { SessionId = request.SessionId, RequestId = request.RequestId, UserId = "mallory" });
        await pool.Events.WaitForAsync(e => e.Any(x => (x.Type is "TurnCompleted" or "TurnCancelled") && x.RequestId == request.RequestId),
            TimeSpan.FromSeconds(20), "the end of the turn");
        Assert.Contains(pool.Events.OfType("TurnCompleted"), e => e.RequestId == request.RequestId);
    }
}
