using Workers.Tests.Infrastructure;

namespace Workers.Tests.Ordering;

/// <summary>docs/producer/produce.js, a stock Node.js AMQP client publishing plain JSON with the producer's login, gets its
/// request answered, and the turn records that login.</summary>
[Collection("worker pools")]
public sealed class A_producer_in_another_language(ServicesFixture services)
{
    [Fact]
    public async Task A_plain_JSON_request_from_Node_is_answered_in_its_session()
    {
        var producer = Path.Combine(Repository.Root, "docs", "producer");
        if (!Directory.Exists(Path.Combine(producer, "node_modules", "amqplib")))
        {
            Assert.Equal(0, (await ExternalProgram.RunAsync("npm", ["ci", "--no-audit", "--no-fund"], producer, [])).Exit);
        }

        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        await pool.StartWorkerAsync();
        var session = Guid.NewGuid();
        var rabbit = services.Services.Producer.On(pool.Broker.Options);
        var (exit, output) = await ExternalProgram.RunAsync("node", ["produce.js", session.ToString(), "alice", "msg 1 from node"], producer, new()
        {
            ["AMQP_URL"] = $"amqp://{rabbit.Username}:{rabbit.Password}@{rabbit.Host}:{rabbit.Port}/{Uri.EscapeDataString(rabbit.VirtualHost)}",
            ["WORKERS_PARTITIONS"] = pool.Partitions.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        Assert.True(exit == 0, output);
        await pool.Events.WaitForAsync(e => e.Any(x => x.SessionId == session && x.Type == "TurnCompleted"), TimeSpan.FromSeconds(20),
            "the reply to the Node producer");
        Assert.Equal($"alice|msg 1 from node|{rabbit.Username}", await pool.Db.ScalarAsync<string>(
            $"SELECT owner_id || '|' || user_text || '|' || producer FROM workers.turns WHERE session_id = '{session}'"));
    }
}
