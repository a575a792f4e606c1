using System.Globalization;
using Workers.Contracts;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Ordering;

/// <summary>
/// A worker that loses its lease in the middle of a turn while its model call runs on: the partition goes to another
/// worker, which runs the request again. The zombie's attempt must publish nothing once it knows, and its late commit
/// must be refused by the epoch fence, so that on the wire a session's seq only grows and the persisted turn is the
/// new owner's.
/// </summary>
[Collection("worker pools")]
public sealed class A_zombie_worker(ServicesFixture services)
{
    /// <summary>Replies of 100 tokens 100 ms apart: 10 s per attempt.</summary>
    private static readonly Dictionary<string, string> SlowModel = new()
    {
        ["Llm__Offline__Tokens"] = "100",
        ["Llm__Offline__TokenDelay"] = "00:00:00.100",
    };

    [Fact]
    public async Task A_worker_that_lost_its_lease_mid_turn_publishes_nothing_more_and_its_late_commit_is_refused()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services, partitions: 4, settings: SlowModel);
        // The zombie checks its lease every 3 s: it goes on streaming for a while after losing it, and comes back to the
        // pool late, so the other worker takes the partition and runs the request while the zombie's attempt still runs.
        var zombie = await pool.StartWorkerAsync(new Dictionary<string, string> { ["Workers__HeartbeatInterval"] = "00:00:03" });
        var other = await pool.StartWorkerAsync();
        await pool.WaitForBalanceAsync([zombie, other], TimeSpan.FromSeconds(30));

        var partition = await pool.Db.ScalarAsync<int>($"SELECT partition FROM workers.partition_leases WHERE worker_id = '{zombie.Id}' LIMIT 1");
        var session = Enumerable.Range(0, 1000).Select(_ => Guid.NewGuid()).First(s => Partitioning.PartitionOf(s, pool.Partitions) == partition);
        var request = Guid.NewGuid();
        await pool.Broker.PublishAsync(Broker.Request(session, "alice", "tell me everything", request));
        await pool.Events.WaitForAsync(e => e.Count(x => x.RequestId == request && x.Type == "ReplyDelta") >= 5, TimeSpan.FromSeconds(20),
            "the zombie's first deltas");

        // Its lease connection cut, as a database failover or a network partition would: the advisory locks go with it.
        await pool.Db.ExecuteAsync(
            $"""
             SELECT pg_terminate_backend(pid) FROM pg_locks
             WHERE locktype = 'advisory' AND granted AND classid = {0x57524B52} AND objid = {partition}
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
             """);

        await pool.Events.WaitForAsync(e => e.Any(x => x.RequestId == request && x.Type == "TurnCompleted"), TimeSpan.FromSeconds(60),
            "the request's completion");
        await zombie.WaitForLogAsync($"Turn {request} of session {session} fenced out", TimeSpan.FromSeconds(30));
        // Time for anything the zombie might still publish to arrive.
        await Task.Delay(TimeSpan.FromSeconds(2));

        var events = pool.Events.Events.Where(e => e.SessionId == session).ToList();
        var starts = events.Where(e => e.Type == "TurnStarted").Select(e => e.Seq).ToList();
        Assert.True(starts.Count == 2, $"two attempts expected, saw TurnStarted at seqs {string.Join(", ", starts)}");
        var wire = string.Join(" ", events.Select(e => $"{e.Type}:{e.Seq.ToString(CultureInfo.InvariantCulture)}"));
        for (var i = 1; i < events.Count; i++)
        {
            Assert.True(events[i].Seq > events[i - 1].Seq, $"seq went back on the wire at event {i}: {wire}");
        }

        var completed = Assert.Single(events, e => e.Type == "TurnCompleted");
        Assert.True(completed.Seq > starts[1], $"the completion is the second attempt's: {wire}");
        Assert.Equal(starts[1], await pool.Db.ScalarAsync<long>($"SELECT first_seq FROM workers.turns WHERE request_id = '{request}'"));
        Assert.Equal(1L, await pool.Db.ScalarAsync<long>($"SELECT count(*) FROM workers.turns WHERE session_id = '{session}'"));
    }
}
