using System.Text;
using System.Text.Json;
using RabbitMQ.Client;
using Workers.Contracts;
using Workers.Tests.Infrastructure;
using Workers.Worker.Turns;

namespace Workers.Tests.Ordering;

/// <summary>
/// A producer controls headers, sizes and ids. None of them may crash a consumer, move a partition, or reach another
/// user's turn; each refusal still reaches the session that sent it.
/// </summary>
[Collection("worker pools")]
public sealed class Hostile_producers(ServicesFixture services)
{
    private static readonly Dictionary<string, string> SlowTurns = new()
    {
        ["Llm__Offline__Tokens"] = "150",
        ["Llm__Offline__TokenDelay"] = "00:00:00.020",
    };

    [Fact]
    public async Task A_forged_delivery_count_is_treated_as_absent_and_the_partition_is_not_handed_over()
    {
        // Classic queues leave x-delivery-count to whoever sets it: here, the producer.
        await using var pool = await WorkersSystem.CreateAsync(services.Services, queueType: "classic");
        await pool.StartWorkerAsync();
        await pool.WaitForBalanceAsync(1, TimeSpan.FromSeconds(20));
        var epochs = await EpochsAsync(pool);
        var session = Guid.NewGuid();
        var forged = new object[] { "many", -5, 1L << 40 }.Select(count => (Count: count, Request: Broker.Request(session, "alice", $"count {count}"))).ToList();
        await using (var channel = await pool.Broker.Connection.CreateChannelAsync())
        {
            foreach (var (count, request) in forged)
            {
                var (exchange, key) = pool.Broker.Partitioned(request);
                var properties = new BasicProperties { Persistent = true, ContentType = "application/json", UserId = pool.Broker.Options.Username, Headers = new Dictionary<string, object?> { ["x-delivery-count"] = count } };
                await channel.BasicPublishAsync(exchange, key, mandatory: false, properties, JsonSerializer.SerializeToUtf8Bytes(request, JsonSerializerOptions.Web));
            }
        }

        var normal = Broker.Request(session, "alice", "after them");
        await pool.Broker.PublishAsync(normal);

        await pool.Events.WaitForAsync(e => e.Count(x => x.Type == "TurnCompleted" && x.SessionId == session) == 4, TimeSpan.FromSeconds(30),
            "all four requests answered");
        Assert.Equal(forged.Select(f => f.Request.RequestId).Append(normal.RequestId),
            pool.Events.OfType("TurnCompleted").Where(e => e.SessionId == session).Select(e => e.RequestId));
        Assert.Equal(epochs, await EpochsAsync(pool));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_request_over_the_size_limit_is_refused_too_large_to_its_session_and_the_worker_carries_on(bool idsAfterText)
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        var worker = await pool.StartWorkerAsync();
        var session = Guid.NewGuid();
        var requestId = Guid.NewGuid();
        var text = new string('x', 1024 * 1024);
        var ids = $"\"sessionId\": \"{session}\", \"requestId\": \"{requestId}\", \"userId\": \"alice\"";
        var body = idsAfterText ? $$"""{"text": "{{text}}", {{ids}}}""" : $$"""{{{ids}}, "text": "{{text}}"}""";
        await pool.Broker.PublishRawAsync(session, Encoding.UTF8.GetBytes(body));
        var next = Broker.Request(session, "alice", "a normal one");
        await pool.Broker.PublishAsync(next);

        await pool.Events.WaitForAsync(e => e.Any(x => x.Type == "TurnCompleted" && x.RequestId == next.RequestId), TimeSpan.FromSeconds(30),
            "the next request answered");
        var refused = Assert.Single(pool.Events.OfType("TurnFailed"), e => e.SessionId == session);
        Assert.Equal((requestId, "alice", ErrorCodes.TooLarge), (refused.RequestId, refused.UserId, refused.Code));
        Assert.True(worker.Running);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public void The_ids_of_an_oversized_body_are_read_in_place_wherever_they_stand(bool idsAfterText, bool envelope)
    {
        var (session, request) = (Guid.NewGuid(), Guid.NewGuid());
        var ids = $"\"sessionId\": \"{session}\", \"requestId\": \"{request}\", \"userId\": \"alice\"";
        var text = new string('x', 300_000);
        var body = idsAfterText ? $$"""{"text": "{{text}}", {{ids}}}""" : $$"""{{{ids}}, "text": "{{text}}"}""";
        if (envelope)
        {
            body = $$"""{"messageId": "{{Guid.NewGuid()}}", "message": {{body}}, "messageType": ["urn:message:Workers.Contracts:ChatRequested"]}""";
        }

        var refused = RequestParser.Oversized(Encoding.UTF8.GetBytes(body));
        Assert.Equal((ErrorCodes.TooLarge, session, request, "alice"), (refused.Code, refused.SessionId, refused.RequestId, refused.UserId));
    }

    [Fact]
    public async Task A_request_reusing_someone_elses_request_id_cannot_shadow_their_turn_from_being_cancelled()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services, settings: SlowTurns);
        await pool.StartWorkerAsync();
        var alices = Broker.Request(Guid.NewGuid(), "alice", "a long answer, please");
        await pool.Broker.PublishAsync(alices);
        await pool.Events.WaitForAsync(e => e.Any(x => x.Type == "ReplyDelta" && x.RequestId == alices.RequestId), TimeSpan.FromSeconds(20),
            "alice's turn streaming");

        // Mallory reuses alice's request id in a session of her own, on the same worker.
        var mallorys = Broker.Request(Guid.NewGuid(), "mallory", "me too", alices.RequestId);
        await pool.Broker.PublishAsync(mallorys);
        await pool.Events.WaitForAsync(e => e.Any(x => x.Type == "ReplyDelta" && x.SessionId == mallorys.SessionId), TimeSpan.FromSeconds(20),
            "mallory's turn streaming");
        // And names alice's request in a cancel of her own session.
        await pool.Broker.PublishCancelAsync(new CancelTurn { SessionId = mallorys.SessionId, RequestId = alices.RequestId, UserId = "alice" });
        await pool.Broker.PublishCancelAsync(new CancelTurn { SessionId = alices.SessionId, RequestId = alices.RequestId, UserId = "alice" });

        await pool.Events.WaitForAsync(e => e.Count(x => x.RequestId == alices.RequestId && x.Type is "TurnCompleted" or "TurnCancelled") == 2,
            TimeSpan.FromSeconds(30), "both turns ended");
        var ends = pool.Events.Events.Where(x => x.RequestId == alices.RequestId && x.Type is "TurnCompleted" or "TurnCancelled").ToDictionary(x => x.SessionId, x => x.Type);
        Assert.Equal("TurnCancelled", ends[alices.SessionId]);
        Assert.Equal("TurnCompleted", ends[mallorys.SessionId]);
    }

    [Fact]
    public void Cancels_waiting_for_their_turn_are_kept_only_by_the_partitions_owner_and_only_so_many()
    {
        var turns = new ActiveTurns();
        var kept = Request("alice");
        turns.Cancel(kept.SessionId, kept.RequestId, "alice", ownsSession: true);
        Assert.True(turns.Start(Reply(kept)).IsCancellationRequested);

        var elsewhere = Request("alice");
        turns.Cancel(elsewhere.SessionId, elsewhere.RequestId, "alice", ownsSession: false);
        Assert.False(turns.Start(Reply(elsewhere)).IsCancellationRequested);

        var oldest = Request("alice");
        turns.Cancel(oldest.SessionId, oldest.RequestId, "alice", ownsSession: true);
        for (var i = 0; i < ActiveTurns.MaxPendingCancels; i++)
        {
            turns.Cancel(Guid.NewGuid(), Guid.NewGuid(), "mallory", ownsSession: true);
        }

        Assert.False(turns.Start(Reply(oldest)).IsCancellationRequested);
        var someoneElses = Request("alice");
        turns.Cancel(someoneElses.SessionId, someoneElses.RequestId, "mallory", ownsSession: true);
        Assert.False(turns.Start(Reply(someoneElses)).IsCancellationRequested);
    }

    private static ChatRequested Request(string user) => Broker.Request(Guid.NewGuid(), user, "hi");

    private static TurnReply Reply(ChatRequested request) => new(request, 1, null!, TimeSpan.Zero, 1);

    private static async Task<List<(int, long)>> EpochsAsync(WorkersSystem pool)
    {
        await using var connection = await pool.Db.OpenAdminAsync();
        await using var command = new Npgsql.NpgsqlCommand("SELECT partition, epoch FROM workers.partition_leases ORDER BY partition", connection);
        var epochs = new List<(int, long)>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            epochs.Add((reader.GetInt32(0), reader.GetInt64(1)));
        }

        return epochs;
    }
}
