using Workers.Contracts;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Sessions;

/// <summary>
/// A first request for an unknown session id creates the session for the request's user (producers need not create
/// sessions first). Once it exists it is that user's: nobody else can claim it, write into it, or learn it exists.
/// </summary>
[Collection("worker pools")]
public sealed class Sessions_created_by_requests(ServicesFixture services)
{
    [Fact]
    public async Task A_first_request_creates_the_session_and_no_other_user_can_write_into_it()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        await pool.StartWorkerAsync();
        var session = Guid.NewGuid();
        var alices = Broker.Request(session, "alice", "msg 1");
        await pool.Broker.PublishAsync(alices);
        await pool.Events.WaitForAsync(e => e.Any(x => x.Type == "TurnCompleted" && x.RequestId == alices.RequestId),
            TimeSpan.FromSeconds(20), "alice's turn");
        Assert.Equal("alice", await pool.Db.ScalarAsync<string>($"SELECT owner_id FROM workers.sessions WHERE id = '{session}'"));

        var intruder = Broker.Request(session, "bob", "msg 1 from bob");
        var missing = Broker.Request(Guid.NewGuid(), "bob", "msg 1");
        await pool.Broker.PublishAsync(intruder);
        await pool.Events.WaitForAsync(e => e.Any(x => x.RequestId == intruder.RequestId && x.Type == "TurnFailed"),
            TimeSpan.FromSeconds(20), "bob's refusal");
        var refused = pool.Events.OfType("TurnFailed").Single(e => e.RequestId == intruder.RequestId);
        Assert.Equal((ErrorCodes.SessionNotFound, "bob"), (refused.Code, refused.UserId));
        Assert.DoesNotContain(pool.Events.Events, e => e.RequestId == intruder.RequestId && e.Type != "TurnFailed");

        Assert.Equal("alice|1", await pool.Db.ScalarAsync<string>($"SELECT owner_id || '|' || turn_seq FROM workers.sessions WHERE id = '{session}'"));
        Assert.Equal(0L, await pool.Db.ScalarAsync<long>($"SELECT count(*) FROM workers.turns WHERE owner_id = 'bob'"));
        Assert.Equal(0L, await pool.Db.ScalarAsync<long>($"SELECT count(*) FROM workers.inbox WHERE owner_id = 'bob'"));

        // Bob's own new session still works: the refusal cost him nothing else.
        await pool.Broker.PublishAsync(missing);
        await pool.Events.WaitForAsync(e => e.Any(x => x.Type == "TurnCompleted" && x.RequestId == missing.RequestId),
            TimeSpan.FromSeconds(20), "bob's own turn");
    }
}
