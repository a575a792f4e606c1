using Workers.Contracts;
using Workers.Migrator;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Operations;

/// <summary>
/// <c>Workers.Migrator pool</c> shows the pool's members with their lanes and waiting requests, and each partition's
/// owner, epoch and backlog; <c>Workers.Migrator parked</c> lists parked requests and replays one to its session (once)
/// or discards it. Run as the operator runs them, with the admin logins.
/// </summary>
[Collection("worker pools")]
public sealed class Operator_view(ServicesFixture services)
{
    [Fact]
    public async Task The_pool_report_shows_members_with_their_lanes_and_each_partitions_owner_epoch_and_backlog()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services, recordEvents: false);
        var workers = new[] { await pool.StartWorkerAsync(), await pool.StartWorkerAsync() };
        await pool.WaitForBalanceAsync(workers, TimeSpan.FromSeconds(30));
        var view = new OperatorView(pool.Db.Admin, pool.Broker.Options);

        // One session busy with a slow turn and two requests waiting behind it.
        var session = Guid.NewGuid();
        foreach (var text in new[] { "msg 1 #think=8000", "msg 2", "msg 3" })
        {
            await pool.Broker.PublishAsync(Broker.Request(session, "alice", text));
        }

        var partition = Partitioning.PartitionOf(session, pool.Partitions);
        OperatorView.PoolState state;
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (true)
        {
            state = await view.PoolAsync(pool.Partitions, CancellationToken.None);
            if ((state.Members.Any(m => m is { Lanes: 1, Waiting: 2 }) && state.Partitions[partition].Unacked == 3) || DateTime.UtcNow > deadline)
            {
                break;
            }

            await Task.Delay(250);
        }

        Assert.Equal(["w1", "w2"], state.Members.Select(m => m.WorkerId));
        Assert.All(state.Members, m => Assert.Equal(pool.Partitions / 2, m.Partitions));
        var busy = Assert.Single(state.Members, m => m.Lanes == 1);
        Assert.Equal(2, busy.Waiting);
        Assert.Equal(busy.WorkerId, state.Partitions[partition].Owner);
        Assert.All(state.Partitions, p => Assert.True(p.Owner is "w1" or "w2" && p.Epoch >= 1, $"partition {p.Partition}: {p.Owner} {p.Epoch}"));
        Assert.Equal(3, state.Partitions[partition].Ready + state.Partitions[partition].Unacked);

        var (exit, output) = await RunAsync(pool, "pool");
        Assert.True(exit == 0, output);
        Assert.Contains("members (2):", output, StringComparison.Ordinal);
        Assert.Contains("lanes    1  waiting    2", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_parked_request_is_listed_then_replayed_to_its_session_once_or_discarded()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        await pool.StartWorkerAsync();
        await pool.WaitForBalanceAsync(1, TimeSpan.FromSeconds(30));
        var session = Guid.NewGuid();
        Guid replayed = Guid.NewGuid(), discarded = Guid.NewGuid();
        // What the worker leaves when it parks a request: the text kept for the operator, the inbox marked failed.
        await pool.Db.ExecuteAsync(
            $"""
             INSERT INTO workers.sessions (id, owner_id) VALUES ('{session}', 'alice');
             INSERT INTO workers.parked_requests (session_id, request_id, owner_id, user_text, code, reason, attempts)
             VALUES ('{session}', '{replayed}', 'alice', 'hello again', 'poisoned', 'started 6 times without completing; parked', 6),
                    ('{session}', '{discarded}', 'alice', 'do not run me', 'poisoned', 'started 6 times without completing; parked', 6);
             INSERT INTO workers.inbox (session_id, request_id, owner_id, status) VALUES ('{session}', '{replayed}', 'alice', 'failed');
             """);

        var (exit, listed) = await RunAsync(pool, "parked");
        Assert.True(exit == 0, listed);
        Assert.Contains($"{session} {replayed} owner alice poisoned ×6", listed, StringComparison.Ordinal);
        Assert.DoesNotContain("hello again", listed, StringComparison.Ordinal);

        Assert.Equal(0, (await RunAsync(pool, "parked", "replay", session.ToString(), replayed.ToString())).Exit);
        await pool.Events.WaitForAsync(e => e.Any(x => x.RequestId == replayed && x.Type == "TurnCompleted"), TimeSpan.FromSeconds(20),
            "the replayed request's reply");
        Assert.Equal($"alice|hello again|complete|{pool.Broker.Options.Username}", await pool.Db.ScalarAsync<string>(
            $"SELECT owner_id || '|' || user_text || '|' || status || '|' || producer FROM workers.turns WHERE request_id = '{replayed}'"));
        var again = await RunAsync(pool, "parked", "replay", session.ToString(), replayed.ToString());
        Assert.Equal(1, again.Exit);
        Assert.Contains("no parked request", again.Output, StringComparison.Ordinal);

        Assert.Equal(0, (await RunAsync(pool, "parked", "discard", session.ToString(), discarded.ToString())).Exit);
        Assert.Equal(0L, await pool.Db.ScalarAsync<long>("SELECT count(*) FROM workers.parked_requests"));
        Assert.Equal(0L, await pool.Db.ScalarAsync<long>($"SELECT count(*) FROM workers.turns WHERE request_id = '{discarded}'"));
        Assert.Equal(1L, await pool.Db.ScalarAsync<long>($"SELECT count(*) FROM workers.turns WHERE session_id = '{session}'"));
    }

    private static Task<(int Exit, string Output)> RunAsync(WorkersSystem pool, params string[] args)
    {
        var broker = pool.Broker.Options;
        return ExternalProgram.RunAsync("dotnet", [Repository.HostDll("Workers.Migrator"), .. args], Repository.Root, new()
        {
            ["ConnectionStrings__PostgresAdmin"] = pool.Db.Admin.ConnectionString,
            ["RabbitMq__Host"] = broker.Host, ["RabbitMq__Port"] = broker.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["RabbitMq__Username"] = broker.Username, ["RabbitMq__Password"] = broker.Password, ["RabbitMq__VirtualHost"] = broker.VirtualHost,
            ["RabbitMq__ManagementPort"] = broker.ManagementPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Workers__Partitions"] = pool.Partitions.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
    }
}
