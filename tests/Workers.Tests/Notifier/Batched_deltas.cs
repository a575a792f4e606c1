using System.Text;
using System.Text.Json;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Notifier;

/// <summary>
/// With <c>Workers:BatchDeltas</c> on, one broker message carries the deltas of many sessions, routed by one of them
/// and by the others' keys in its BCC header. Every client must still get exactly its own reply, whole, once and in
/// order, on whichever notifier it is connected to, although each notifier receives deltas of sessions it does not
/// serve.
/// </summary>
[Collection("worker pools")]
public sealed class Batched_deltas(ServicesFixture services)
{
    private static readonly Dictionary<string, string> Notifiers = new() { ["Limits__ConcurrentTurns"] = "5" };

    private static string Type(JsonElement e) => e.GetProperty("type").GetString()!;

    [Fact]
    public async Task Batches_carry_several_sessions_yet_each_client_gets_only_its_own_reply_whole_once_and_in_order_on_every_notifier()
    {
        var (pool, first) = await NotifierSystem.StartAsync(services, new Dictionary<string, string>
        {
            ["Workers__BatchDeltas"] = "true",
            ["Llm__Offline__Tokens"] = "60",
            ["Llm__Offline__TokenDelay"] = "00:00:00.010",
            ["Llm__DeltaInterval"] = "00:00:00.020",
        }, Notifiers);
        await using var _ = pool;
        var second = await pool.StartNotifierAsync(Notifiers);

        // Twelve users, one session each, on alternating notifiers; all send three messages at once.
        var clients = new List<(ChatClient Client, Guid Session)>();
        for (var i = 0; i < 12; i++)
        {
            var client = await (i % 2 == 0 ? first : second).ConnectAsync($"batch-user-{i}");
            var session = await client.CreateSessionAsync();
            await client.SubscribeAsync(session);
            clients.Add((client, session));
        }

        var sent = await Task.WhenAll(clients.Select(async c =>
            (c.Client, c.Session, Requests: new[]
            {
                await c.Client.SendAsync(c.Session, "one"), await c.Client.SendAsync(c.Session, "two"), await c.Client.SendAsync(c.Session, "three"),
            })));

        foreach (var (client, session, requests) in sent)
        {
            await client.WaitForAsync(events => events.Count(e => Type(e) == "TurnCompleted") >= requests.Length, TimeSpan.FromSeconds(60),
                "the user's three replies");
            var live = client.Live;
            Assert.All(live, e =>
            {
                Assert.Equal(client.UserId, e.GetProperty("userId").GetString());
                Assert.Equal(session, e.GetProperty("sessionId").GetGuid());
            });

            // Each event once, in seq order.
            var seqs = live.Select(e => e.GetProperty("seq").GetInt64()).ToList();
            Assert.Equal(seqs.Order(), seqs);
            Assert.Equal(seqs.Count, seqs.Distinct().Count());

            // No delta lost, none doubled: a reply's deltas, joined, are its completed text; and the turns completed in
            // the order they were sent.
            var completed = live.Where(e => Type(e) == "TurnCompleted").ToList();
            Assert.Equal(requests, completed.Select(e => e.GetProperty("requestId").GetGuid()));
            foreach (var done in completed)
            {
                var requestId = done.GetProperty("requestId").GetGuid();
                var streamed = new StringBuilder();
                foreach (var delta in live.Where(e => ChatClient.Is(e, "ReplyDelta", requestId)))
                {
                    streamed.Append(delta.GetProperty("text").GetString());
                }

                Assert.Equal(done.GetProperty("text").GetString(), streamed.ToString());
            }
        }

        // The batching really happened: messages that each carried deltas of several sessions, of users connected to
        // both notifiers (so BCC, not the routing key alone, brought most of them to their clients).
        var batches = pool.Events.Batches;
        var firstUsers = clients.Where((_, i) => i % 2 == 0).Select(c => c.Client.UserId).ToHashSet();
        var mixed = batches.Where(b => b.Select(d => d.SessionId).Distinct().Count() > 1).ToList();
        Assert.NotEmpty(mixed);
        Assert.Contains(mixed, b => b.Any(d => firstUsers.Contains(d.UserId)) && b.Any(d => !firstUsers.Contains(d.UserId)));
        Assert.Equal(batches.Sum(b => b.Count), pool.Events.OfType("ReplyDelta").Count()); // no delta went out alone
        TestContext.Current.TestOutputHelper?.WriteLine($"batched deltas: {batches.Count} batches, {batches.Sum(b => b.Count)} deltas, " +
                          $"{mixed.Count} with several sessions, largest {batches.Max(b => b.Count)}");
        foreach (var (client, _, _) in sent)
        {
            await client.DisposeAsync();
        }
    }
}
