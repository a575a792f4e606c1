using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Notifier;

/// <summary>A connection receives its own user's events, all of them, once, in order, on any notifier, after any reconnect.</summary>
[Collection("worker pools")]
public sealed class Delivery_resume_and_fanout(ServicesFixture services)
{
    private static readonly Dictionary<string, string> Streaming = new()
    {
        ["Llm__Offline__Tokens"] = "200",
        ["Llm__Offline__TokenDelay"] = "00:00:00.040",
    };

    private static string Type(JsonElement e) => e.GetProperty("type").GetString()!;

    private static long Seq(JsonElement e) => e.GetProperty("seq").GetInt64();

    [Fact]
    public async Task Two_users_chatting_at_once_never_receive_each_others_events()
    {
        var (pool, notifier) = await NotifierSystem.StartAsync(services, new Dictionary<string, string>
        {
            ["Llm__Offline__Tokens"] = "12",
            ["Llm__Offline__TokenDelay"] = "00:00:00.005",
        }, new Dictionary<string, string> { ["Limits__ConcurrentTurns"] = "50" });
        await using var _ = pool;
        var second = await pool.StartNotifierAsync(new Dictionary<string, string> { ["Limits__ConcurrentTurns"] = "50" });
        var users = new[] { "alice", "bob", "carol" };
        var clients = new List<(ChatClient Client, HashSet<Guid> Sessions)>();
        foreach (var user in users)
        {
            foreach (var instance in new[] { notifier, second })
            {
                clients.Add((await instance.ConnectAsync(user), []));
            }
        }

        // Each user's two connections (one per notifier) watch that user's two sessions.
        foreach (var group in clients.GroupBy(c => c.Client.UserId))
        {
            var owner = group.First().Client;
            var sessions = new[] { await owner.CreateSessionAsync(), await owner.CreateSessionAsync() };
            foreach (var (client, watched) in group)
            {
                foreach (var session in sessions)
                {
                    await client.SubscribeAsync(session);
                    watched.Add(session);
                }
            }
        }

        var sent = new List<(string User, Guid RequestId)>();
        await Task.WhenAll(clients.Where((_, i) => i % 2 == 0).Select(async c =>
        {
            foreach (var session in c.Sessions)
            {
                for (var n = 1; n <= 4; n++)
                {
                    var requestId = await c.Client.SendAsync(session, $"msg {n}");
                    lock (sent)
                    {
                        sent.Add((c.Client.UserId, requestId));
                    }
                }
            }
        }));

        foreach (var (client, watched) in clients)
        {
            var mine = sent.Where(s => s.User == client.UserId).Select(s => s.RequestId).ToHashSet();
            await client.WaitForAsync(events => events.Count(e => Type(e) == "TurnCompleted") >= mine.Count, TimeSpan.FromSeconds(60),
                "all of the user's turns");
            Assert.All(client.Live, e =>
            {
                Assert.Equal(client.UserId, e.GetProperty("userId").GetString());
                Assert.Contains(e.GetProperty("sessionId").GetGuid(), watched);
                Assert.Contains(e.GetProperty("requestId").GetGuid(), mine);
            });
            Assert.Equal(mine.Order(), client.Live.Where(e => Type(e) == "TurnCompleted").Select(e => e.GetProperty("requestId").GetGuid()).Order());
            await client.DisposeAsync();
        }
    }

    [Fact]
    public async Task Resuming_after_seq_k_yields_the_completed_turns_after_k_once_and_in_order()
    {
        var (pool, notifier) = await NotifierSystem.StartAsync(services);
        await using var _ = pool;
        await using var live = await notifier.ConnectAsync("alice");
        var session = await live.CreateSessionAsync();
        await live.SubscribeAsync(session);
        var requests = new List<Guid>();
        for (var n = 1; n <= 3; n++)
        {
            var requestId = await live.SendAsync(session, $"msg {n}");
            requests.Add(requestId);
            await live.WaitForAsync(e => e.Any(x => ChatClient.Is(x, "TurnCompleted", requestId)), TimeSpan.FromSeconds(20), $"turn {n}");
        }

        var k = Seq(live.Live.Single(e => ChatClient.Is(e, "TurnCompleted", requests[1])));
        await using var resumed = await notifier.ConnectAsync("alice");
        var replay = await resumed.SubscribeAsync(session, k);

        var expected = live.Live.Where(e => Seq(e) > k && Type(e) is "TurnStarted" or "TurnCompleted").Select(e => (Type(e), Seq(e))).ToList();
        Assert.Equal(expected, replay.Select(e => (Type(e), Seq(e))));
        Assert.Equal(live.Live.Single(e => ChatClient.Is(e, "TurnCompleted", requests[2])).GetProperty("text").GetString(),
            replay[^1].GetProperty("text").GetString());
        Assert.Empty(await resumed.SubscribeAsync(session, Seq(replay[^1])));
        Assert.Equal(6, (await resumed.SubscribeAsync(session, 0)).Count);
    }

    [Fact]
    public async Task A_regenerated_turn_says_which_it_replaces_live_and_in_a_replay_and_the_replaced_one_is_not_replayed()
    {
        var (pool, notifier) = await NotifierSystem.StartAsync(services);
        await using var _ = pool;
        await using var live = await notifier.ConnectAsync("alice");
        var session = await live.CreateSessionAsync();
        await live.SubscribeAsync(session);
        var first = await live.SendAsync(session, "msg 1");
        await live.WaitForAsync(e => e.Any(x => ChatClient.Is(x, "TurnCompleted", first)), TimeSpan.FromSeconds(20), "the first turn");
        var again = await live.Connection.InvokeAsync<Guid>("RegenerateLast", session.ToString(), null);
        await live.WaitForAsync(e => e.Any(x => ChatClient.Is(x, "TurnCompleted", again)), TimeSpan.FromSeconds(20), "the regenerated turn");
        Assert.Equal(first, live.Live.Single(e => ChatClient.Is(e, "TurnStarted", again)).GetProperty("replaces").GetGuid());

        // A client resuming from the start gets the current version only, and is told what it replaced.
        await using var resumed = await notifier.ConnectAsync("alice");
        var replay = await resumed.SubscribeAsync(session, 0);
        Assert.DoesNotContain(replay, e => e.GetProperty("requestId").GetGuid() == first);
        Assert.Equal(first, replay.Single(e => ChatClient.Is(e, "TurnStarted", again)).GetProperty("replaces").GetGuid());
        Assert.Contains("msg 1", replay.Single(e => ChatClient.Is(e, "TurnCompleted", again)).GetProperty("text").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Resuming_after_a_long_absence_replays_the_newest_turns_within_the_cap_and_older_ones_page_over_rest()
    {
        var (pool, notifier) = await NotifierSystem.StartAsync(services,
            notifierSettings: new Dictionary<string, string> { ["Limits__MaxReplayChars"] = "65536" });
        await using var _ = pool;
        var session = await pool.Db.SeedLongSessionAsync("alice", turns: 300, replyChars: 1000);
        await using var alice = await notifier.ConnectAsync("alice");

        // 300 turns of 1,000 characters do not fit 65,536: the newest 65 do, each as TurnStarted + TurnCompleted, up to
        // the session's last event, so the client ends in the session's current state.
        var replay = await alice.SubscribeAsync(session, 0);
        Assert.Equal(130, replay.Count);
        Assert.Equal((3L * 236) - 2, Seq(replay[0]));
        Assert.Equal(900L, Seq(replay[^1]));
        Assert.Equal(Enumerable.Repeat(new[] { "TurnStarted", "TurnCompleted" }, 65).SelectMany(t => t), replay.Select(Type));
        // Older turns are there for paging, oldest first, as the REST history always gave them.
        using var http = notifier.Http("alice");
        var older = await http.GetFromJsonAsync<List<JsonElement>>($"/api/sessions/{session}/turns?afterSeq=0&limit=235");
        Assert.Equal(Enumerable.Range(1, 235).Select(n => (long)n), older!.Select(t => t.GetProperty("turnNo").GetInt64()));
    }

    [Fact]
    public async Task Resuming_mid_turn_on_another_notifier_and_after_a_restart_gets_the_text_so_far_then_the_rest()
    {
        var (pool, first) = await NotifierSystem.StartAsync(services, Streaming);
        await using var _ = pool;
        var second = await pool.StartNotifierAsync();
        await using var writer = await first.ConnectAsync("alice");
        var session = await writer.CreateSessionAsync();
        await writer.SubscribeAsync(session);

        // Another notifier: it saw every event of the turn so far, but the client saw only up to k.
        var requestId = await writer.SendAsync(session, "msg 1");
        await ResumeMidTurnAsync(second, writer, session, requestId);

        // A notifier started after the turn began has seen none of it: the text so far comes from the worker.
        first.Process.Kill();
        var restarted = await pool.StartNotifierAsync();
        await using var writer2 = await second.ConnectAsync("alice");
        await writer2.SubscribeAsync(session, Seq(writer.Live[^1]));
        var next = await writer2.SendAsync(session, "msg 2");
        await ResumeMidTurnAsync(restarted, writer2, session, next);
    }

    private static async Task ResumeMidTurnAsync(NotifierProcess notifier, ChatClient writer, Guid session, Guid requestId)
    {
        await writer.WaitForAsync(e => e.Count(x => ChatClient.Is(x, "ReplyDelta", requestId)) >= 5, TimeSpan.FromSeconds(20), "some deltas");
        var k = Seq(writer.Live.Last(x => ChatClient.Is(x, "ReplyDelta", requestId)));
        await using var reader = await notifier.ConnectAsync("alice");
        var replay = await reader.SubscribeAsync(session, k);
        // The end may already be in the replay when the turn finished while the subscription was being built.
        await reader.WaitForAsync(e => replay.Concat(e).Any(x => ChatClient.Is(x, "TurnCompleted", requestId)), TimeSpan.FromSeconds(20),
            "the end of the turn");

        var received = replay.Concat(reader.Live).ToList();
        var seqs = received.Select(Seq).ToList();
        Assert.All(seqs, s => Assert.True(s > k, $"seq {s} is not after {k}"));
        Assert.Equal(seqs.Order(), seqs);
        Assert.Equal(seqs.Distinct().Count(), seqs.Count);

        // Rebuild the reply the way a client does: a snapshot replaces, a delta appends; it must equal the final text.
        var text = string.Concat(writer.Live.Where(x => ChatClient.Is(x, "ReplyDelta", requestId) && Seq(x) <= k)
            .Select(x => x.GetProperty("text").GetString()));
        foreach (var e in received.Where(x => ChatClient.Is(x, "ReplyDelta", requestId)))
        {
            var delta = e.GetProperty("text").GetString();
            text = e.TryGetProperty("snapshot", out var snapshot) && snapshot.GetBoolean() ? delta : text + delta;
        }

        var final = received.Single(x => ChatClient.Is(x, "TurnCompleted", requestId)).GetProperty("text").GetString();
        Assert.Equal(final, text);
        Assert.Contains(replay, x => x.TryGetProperty("snapshot", out _));
    }

    [Fact]
    public async Task Events_reach_a_users_connections_on_every_notifier_instance()
    {
        var (pool, first) = await NotifierSystem.StartAsync(services);
        await using var _ = pool;
        var second = await pool.StartNotifierAsync();
        await using var phone = await first.ConnectAsync("alice");
        await using var laptop = await second.ConnectAsync("alice");
        var session = await phone.CreateSessionAsync();
        await phone.SubscribeAsync(session);
        await laptop.SubscribeAsync(session);
        var requestId = await phone.SendAsync(session, "msg 1");
        foreach (var client in new[] { phone, laptop })
        {
            await client.WaitForAsync(e => e.Any(x => ChatClient.Is(x, "TurnCompleted", requestId)), TimeSpan.FromSeconds(20), "the turn");
        }

        // Both see the same turn: the same events (a connection that is behind may get consecutive deltas as one, with
        // the last one's seq), and the same text, which is the reply's.
        Assert.Equal(Outline(phone.Live), Outline(laptop.Live));
        var final = phone.Live.Single(e => ChatClient.Is(e, "TurnCompleted", requestId)).GetProperty("text").GetString();
        Assert.All(new[] { phone, laptop }, client => Assert.Equal(final,
            string.Concat(client.Live.Where(e => Type(e) == "ReplyDelta").Select(e => e.GetProperty("text").GetString()))));
        Assert.Equal(HubConnectionState.Connected, laptop.Connection.State);

        static List<(string, long)> Outline(IReadOnlyList<JsonElement> events) =>
            [.. events.Where(e => Type(e) != "ReplyDelta").Select(e => (Type(e), Seq(e)))];
    }

    [Fact]
    public async Task A_refusal_issued_before_the_session_was_read_still_reaches_the_client()
    {
        var (pool, notifier) = await NotifierSystem.StartAsync(services,
            new Dictionary<string, string> { ["Workers__MaxWaitingPerSession"] = "1" },
            new Dictionary<string, string> { ["Limits__ConcurrentTurns"] = "10" });
        await using var _ = pool;
        await using var alice = await notifier.ConnectAsync("alice");
        var session = await alice.CreateSessionAsync();
        await alice.SubscribeAsync(session);
        var first = await alice.SendAsync(session, "msg 1 #think=2000");
        await alice.WaitForAsync(e => e.Any(x => ChatClient.Is(x, "TurnStarted", first)), TimeSpan.FromSeconds(20), "the first turn");
        await alice.SendAsync(session, "msg 2");
        var third = await alice.SendAsync(session, "msg 3");

        await alice.WaitForAsync(e => e.Any(x => ChatClient.Is(x, "TurnFailed", third)), TimeSpan.FromSeconds(20), "the refusal");
        var refusal = alice.Live.Single(x => ChatClient.Is(x, "TurnFailed", third));
        Assert.Equal(("session_busy", 0L), (refusal.GetProperty("code").GetString(), Seq(refusal)));
    }
}
