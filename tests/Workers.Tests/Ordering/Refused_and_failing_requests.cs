using System.Text;
using Workers.Contracts;
using Workers.Core.Messaging;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Ordering;

/// <summary>Bad input and failing requests are refused once with a reason, the session is told, and nothing else stops.</summary>
[Collection("worker pools")]
public sealed class Refused_and_failing_requests(ServicesFixture services)
{
    [Fact]
    public async Task Malformed_and_failing_requests_go_to_the_error_queue_once_and_the_session_carries_on()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        await pool.StartWorkerAsync();
        var session = Guid.NewGuid();
        var bystander = Session_lanes.SessionOnPartition(Partitioning.PartitionOf(session, pool.Partitions), pool.Partitions);
        var bad = new (string Body, string? Code)[]
        {
            ("{not json", null),
            ($$"""{"requestId": 5, "sessionId": "{{session}}", "userId": "alice", "text": "hi"}""", ErrorCodes.InvalidRequest),
            ($$"""{"requestId": "{{Guid.NewGuid()}}", "sessionId": "{{session}}", "userId": "alice"}""", ErrorCodes.InvalidRequest),
            ($$"""{"requestId": "{{Guid.NewGuid()}}", "sessionId": "'; DROP TABLE sessions; --", "userId": "alice", "text": "hi"}""", null),
            ($$"""{"requestId": "{{Guid.NewGuid()}}", "sessionId": "{{session}}", "userId": "alice", "text": "{{new string('x', 16_001)}}"}""", ErrorCodes.TooLarge),
        };
        await pool.Broker.PublishAsync(Broker.Request(session, "alice", "msg 1"));
        foreach (var (body, _) in bad)
        {
            await pool.Broker.PublishRawAsync(session, Encoding.UTF8.GetBytes(body));
        }

        var failing = Broker.Request(session, "alice", "msg 2 #fail");
        await pool.Broker.PublishAsync(failing);
        var next = Broker.Request(session, "alice", "msg 3");
        await pool.Broker.PublishAsync(next);
        var other = Broker.Request(bystander, "bob", "msg 1");
        await pool.Broker.PublishAsync(other);

        await pool.Events.WaitForAsync(e => e.Any(x => x.Type == "TurnCompleted" && x.RequestId == next.RequestId)
                && e.Any(x => x.Type == "TurnCompleted" && x.RequestId == other.RequestId),
            TimeSpan.FromSeconds(30), "the session's next request and the bystander's");
        await Task.Delay(500);

        var failures = pool.Events.OfType("TurnFailed").Where(e => e.SessionId == session).ToList();
        Assert.Equal(bad.Where(b => b.Code is not null).Select(b => b.Code).Append(ErrorCodes.InternalError), failures.Select(f => f.Code));
        Assert.DoesNotContain(failures, f => f.Message.GetProperty("message").GetString()!.Contains("Exception", StringComparison.Ordinal));
        Assert.Equal([1, 3], (await pool.PersistedCountersAsync())[session]);
        Assert.Equal(1L, await pool.Db.ScalarAsync<long>("SELECT count(*) FROM pg_tables WHERE schemaname = 'workers' AND tablename = 'sessions'"));

        var errors = new List<RabbitMQ.Client.BasicGetResult>();
        while (await pool.Broker.GetAsync(RequestTopology.ErrorQueue) is { } message)
        {
            errors.Add(message);
        }

        Assert.Equal(bad.Length + 1, errors.Count);
        var reasons = errors.Select(e => Encoding.UTF8.GetString((byte[])e.BasicProperties.Headers!["MT-Fault-Message"]!)).ToList();
        Assert.StartsWith("body is not JSON", reasons[0], StringComparison.Ordinal);
        Assert.Equal("requestId must be a UUID", reasons[1]);
        Assert.Equal("text is missing", reasons[2]);
        Assert.Equal("sessionId must be a UUID", reasons[3]);
        Assert.StartsWith("text is 16001 characters", reasons[4], StringComparison.Ordinal);
        Assert.Equal("System.InvalidOperationException",
            Encoding.UTF8.GetString((byte[])errors[^1].BasicProperties.Headers!["MT-Fault-ExceptionType"]!));
        // No user text and no exception message in the error queue: ids, codes and the worker's own reasons only.
        foreach (var error in errors)
        {
            var all = Encoding.UTF8.GetString(error.Body.Span) + string.Concat(error.BasicProperties.Headers!.Values
                .Select(v => v is byte[] bytes ? Encoding.UTF8.GetString(bytes) : v?.ToString()));
            Assert.DoesNotContain("#fail", all, StringComparison.Ordinal);
            Assert.DoesNotContain("xxxxxxxx", all, StringComparison.Ordinal);
            Assert.DoesNotContain("DROP TABLE", all, StringComparison.Ordinal);
        }

        // The failed request's text is kept for an operator under row-level security, and goes with its session.
        Assert.Equal("msg 2 #fail", await pool.Db.ScalarAsync<string>(
            $"SELECT user_text FROM workers.parked_requests WHERE request_id = '{failing.RequestId}'"));
        await pool.Db.ExecuteAsync($"DELETE FROM workers.sessions WHERE id = '{session}'");
        Assert.Equal(0L, await pool.Db.ScalarAsync<long>("SELECT count(*) FROM workers.parked_requests"));
    }

    [Theory]
    [InlineData("quorum")]
    [InlineData("classic")]
    public async Task A_request_that_keeps_killing_its_worker_is_parked_after_the_delivery_limit(string queueType)
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services, queueType: queueType, settings: new Dictionary<string, string>
        {
            ["Workers__MaxDeliveries"] = "2",
        });
        var session = Guid.NewGuid();
        var killer = Broker.Request(session, "alice", "msg 1 #think=60000");
        await pool.Broker.PublishAsync(killer);
        for (var delivery = 1; delivery <= 2; delivery++)
        {
            var worker = await pool.StartWorkerAsync();
            var started = delivery;
            await pool.Events.WaitForAsync(e => e.Count(x => x.Type == "TurnStarted" && x.RequestId == killer.RequestId) == started,
                TimeSpan.FromSeconds(30), $"delivery {delivery} to start");
            worker.Kill();
            await worker.WaitForExitAsync(TimeSpan.FromSeconds(10));
        }

        await pool.StartWorkerAsync();
        var next = Broker.Request(session, "alice", "msg 2");
        await pool.Broker.PublishAsync(next);
        await pool.Events.WaitForAsync(e => e.Any(x => x.Type == "TurnCompleted" && x.RequestId == next.RequestId),
            TimeSpan.FromSeconds(30), "the session's next request");
        var parked = Assert.Single(pool.Events.OfType("TurnFailed"), e => e.RequestId == killer.RequestId);
        Assert.Equal(ErrorCodes.Poisoned, parked.Code);
        var error = await pool.Broker.GetAsync(RequestTopology.ErrorQueue);
        Assert.NotNull(error);
        Assert.Equal(ErrorCodes.Poisoned, Encoding.UTF8.GetString((byte[])error.BasicProperties.Headers!["MT-Fault-Code"]!));
        Assert.Equal([2], (await pool.PersistedCountersAsync())[session]);
    }

    [Fact]
    public async Task A_database_connection_dropped_mid_turn_is_retried_in_place_and_the_session_keeps_its_order()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        var worker = await pool.StartWorkerAsync();
        var session = Guid.NewGuid();
        var slow = Broker.Request(session, "alice", "msg 1 #think=1500");
        var next = Broker.Request(session, "alice", "msg 2");
        await pool.Broker.PublishAsync(slow);
        await pool.Broker.PublishAsync(next);
        await pool.Events.WaitForAsync(e => e.Any(x => x.Type == "TurnStarted" && x.RequestId == slow.RequestId),
            TimeSpan.FromSeconds(20), "the slow turn to start");

        // Every pooled connection of the app role goes, except the lease connection (which holds advisory locks).
        await pool.Db.ExecuteAsync(
            $"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{pool.Db.Name}' AND usename = 'workers_worker' " +
            "AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory')");
        await pool.Events.WaitForAsync(e => e.Any(x => x.Type == "TurnCompleted" && x.RequestId == next.RequestId),
            TimeSpan.FromSeconds(30), "both turns");
        Assert.Equal([1, 2], (await pool.PersistedCountersAsync())[session]);
        Assert.Empty(pool.Events.OfType("TurnFailed"));
        // A dropped connection is the failover case: retried in place for Workers:FailoverWindow, the pool cleared first.
        Assert.Contains(worker.Log, l => l.Contains($"Turn {slow.RequestId} of session {session}: database unavailable", StringComparison.Ordinal));
    }
}
