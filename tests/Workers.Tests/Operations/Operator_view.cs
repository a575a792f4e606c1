using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Workers.Contracts;
using Workers.Core.Operations;
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
        await using var db = Npgsql.NpgsqlDataSource.Create(pool.Db.Admin);
        using var view = new OperatorView(db, pool.Broker.Options, new System.Net.NetworkCredential(pool.Broker.Options.Username, pool.Broker.Options.Password));

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
        var (session, replayed, discarded) = await SeedParkedAsync(pool);

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

    [Fact]
    public async Task The_admin_API_opens_to_an_admin_token_only_and_shows_the_pool()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services, recordEvents: false);
        var worker = await pool.StartWorkerAsync();
        await pool.WaitForBalanceAsync(1, TimeSpan.FromSeconds(30));
        var notifier = await pool.StartNotifierAsync();

        using (var anonymous = notifier.Http())
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync(new Uri("/admin/api/pool", UriKind.Relative))).StatusCode);
        }

        using (var alice = notifier.Http("alice"))
        {
            Assert.Equal(HttpStatusCode.Forbidden, (await alice.GetAsync(new Uri("/admin/api/pool", UriKind.Relative))).StatusCode);
            Assert.Equal(HttpStatusCode.Forbidden, (await alice.GetAsync(new Uri("/admin/api/parked", UriKind.Relative))).StatusCode);
        }

        using var admin = notifier.Http(token: NotifierProcess.AdminToken("ops"));
        var state = await admin.GetFromJsonAsync<JsonElement>(new Uri("/admin/api/pool", UriKind.Relative));
        var member = Assert.Single(state.GetProperty("members").EnumerateArray());
        Assert.Equal("w1", member.GetProperty("workerId").GetString());
        Assert.Equal(pool.Partitions, member.GetProperty("partitions").GetInt32());
        var partitions = state.GetProperty("partitions").EnumerateArray().ToList();
        Assert.Equal(pool.Partitions, partitions.Count);
        Assert.All(partitions, p => Assert.Equal("w1", p.GetProperty("owner").GetString()));
        Assert.All(partitions, p => Assert.True(p.GetProperty("epoch").GetInt64() >= 1));
        Assert.Equal(0, state.GetProperty("parked").GetInt32());
        _ = worker;
    }

    [Fact]
    public async Task The_admin_API_replays_a_parked_request_once_and_discards_another_without_showing_their_text()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        await pool.StartWorkerAsync();
        await pool.WaitForBalanceAsync(1, TimeSpan.FromSeconds(30));
        var notifier = await pool.StartNotifierAsync();
        var (session, replayed, discarded) = await SeedParkedAsync(pool);
        using var admin = notifier.Http(token: NotifierProcess.AdminToken("ops"));

        var listed = await admin.GetStringAsync(new Uri("/admin/api/parked", UriKind.Relative));
        Assert.DoesNotContain("hello again", listed, StringComparison.Ordinal);
        Assert.DoesNotContain("do not run me", listed, StringComparison.Ordinal);
        var parked = JsonSerializer.Deserialize<JsonElement>(listed).EnumerateArray().ToList();
        Assert.Equal(new[] { replayed, discarded }.Order(), parked.Select(p => p.GetProperty("requestId").GetGuid()).Order());
        Assert.All(parked, p => Assert.Equal("alice", p.GetProperty("ownerId").GetString()));
        Assert.Equal(11, parked.Single(p => p.GetProperty("requestId").GetGuid() == replayed).GetProperty("textLength").GetInt32());

        var replay = new Uri($"/admin/api/parked/{session}/{replayed}/replay", UriKind.Relative);
        Assert.Equal(HttpStatusCode.OK, (await admin.PostAsync(replay, null)).StatusCode);
        await pool.Events.WaitForAsync(e => e.Any(x => x.RequestId == replayed && x.Type == "TurnCompleted"), TimeSpan.FromSeconds(20),
            "the replayed request's reply");
        // Published with the notifier's own broker login, which the turn records as its producer.
        Assert.Equal($"alice|hello again|complete|{services.Services.Notifier.Username}", await pool.Db.ScalarAsync<string>(
            $"SELECT owner_id || '|' || user_text || '|' || status || '|' || producer FROM workers.turns WHERE request_id = '{replayed}'"));
        var again = await admin.PostAsync(replay, null);
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
        Assert.Equal("parked_not_found", (await again.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("code").GetString());

        var bad = await admin.DeleteAsync(new Uri($"/admin/api/parked/{session}/not-a-uuid", UriKind.Relative));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal("invalid_request", (await bad.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("code").GetString());
        Assert.Equal(HttpStatusCode.NoContent,
            (await admin.DeleteAsync(new Uri($"/admin/api/parked/{session}/{discarded}", UriKind.Relative))).StatusCode);
        Assert.Equal(0L, await pool.Db.ScalarAsync<long>("SELECT count(*) FROM workers.parked_requests"));
        Assert.Equal(0L, await pool.Db.ScalarAsync<long>($"SELECT count(*) FROM workers.turns WHERE request_id = '{discarded}'"));
        Assert.Equal("[]", await admin.GetStringAsync(new Uri("/admin/api/parked", UriKind.Relative)));
        await notifier.Process.WaitForLogAsync($"Operator ops replayed parked request {replayed}", TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task The_operator_login_reads_no_session_turn_note_inbox_or_parked_row_itself()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services, recordEvents: false);
        var (session, replayed, _) = await SeedParkedAsync(pool);
        await using var db = Npgsql.NpgsqlDataSource.Create(pool.Db.Operator);
        foreach (var table in new[] { "sessions", "turns", "session_notes", "inbox", "parked_requests", "settings" })
        {
            await using var read = db.CreateCommand($"SELECT count(*) FROM workers.{table}");
            var refused = await Assert.ThrowsAsync<Npgsql.PostgresException>(() => read.ExecuteScalarAsync());
            Assert.Equal("42501", refused.SqlState);
        }

        await using (var retention = db.CreateCommand("SELECT workers.delete_idle_sessions()"))
        {
            Assert.Equal("42501", (await Assert.ThrowsAsync<Npgsql.PostgresException>(() => retention.ExecuteScalarAsync())).SqlState);
        }

        // What it may do: the membership tables, and the parked list without its text.
        await using (var members = db.CreateCommand("SELECT count(*) FROM workers.worker_members, workers.partition_leases"))
        {
            await members.ExecuteScalarAsync();
        }

        await using var list = db.CreateCommand("SELECT * FROM workers.operator_parked()");
        await using var reader = await list.ExecuteReaderAsync();
        var columns = Enumerable.Range(0, reader.FieldCount).Select(reader.GetName).ToList();
        Assert.DoesNotContain("user_text", columns);
        var rows = 0;
        while (await reader.ReadAsync())
        {
            rows++;
            Assert.Equal(session, reader.GetGuid(0));
        }

        Assert.Equal(2, rows);
        _ = replayed;
    }

    [Fact]
    public async Task A_refused_monitor_login_is_a_clear_502_and_the_parked_list_still_answers()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services, recordEvents: false);
        var notifier = await pool.StartNotifierAsync(new Dictionary<string, string> { ["Operator__ManagementPassword"] = "wrong-password" });
        using var admin = notifier.Http(token: NotifierProcess.AdminToken("ops"));
        var response = await admin.GetAsync(new Uri("/admin/api/pool", UriKind.Relative));
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal("broker_management_unreachable", problem.GetProperty("code").GetString());
        Assert.Contains("401", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("wrong-password", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal("[]", await admin.GetStringAsync(new Uri("/admin/api/parked", UriKind.Relative)));
    }

    [Fact]
    public async Task A_notifier_without_the_operator_login_says_its_admin_API_is_off()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services, recordEvents: false);
        await pool.StartWorkerAsync();
        var notifier = await pool.StartNotifierAsync(new Dictionary<string, string> { ["ConnectionStrings__PostgresOperator"] = "" });
        using var admin = notifier.Http(token: NotifierProcess.AdminToken("ops"));
        var response = await admin.GetAsync(new Uri("/admin/api/pool", UriKind.Relative));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("operator_view_off", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("code").GetString());
    }

    /// <summary>What the worker leaves when it parks a request: the text kept for the operator, the inbox marked failed.
    /// Two of alice's requests in one session: one to replay (its inbox row says failed), one to discard.</summary>
    internal static async Task<(Guid Session, Guid Replayed, Guid Discarded)> SeedParkedAsync(WorkersSystem pool)
    {
        var session = Guid.NewGuid();
        Guid replayed = Guid.NewGuid(), discarded = Guid.NewGuid();
        await pool.Db.ExecuteAsync(
            $"""
             INSERT INTO workers.sessions (id, owner_id) VALUES ('{session}', 'alice');
             INSERT INTO workers.parked_requests (session_id, request_id, owner_id, user_text, code, reason, attempts)
             VALUES ('{session}', '{replayed}', 'alice', 'hello again', 'poisoned', 'started 6 times without completing; parked', 6),
                    ('{session}', '{discarded}', 'alice', 'do not run me', 'poisoned', 'started 6 times without completing; parked', 6);
             INSERT INTO workers.inbox (session_id, request_id, owner_id, status) VALUES ('{session}', '{replayed}', 'alice', 'failed');
             """);
        return (session, replayed, discarded);
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
