using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Notifier;

/// <summary>Each limit refuses with a clear error, and nothing already accepted is lost.</summary>
[Collection("worker pools")]
public sealed class Limits(ServicesFixture services)
{
    private static readonly Dictionary<string, string> Tight = new()
    {
        ["Limits__MessagesPerMinute"] = "4",
        ["Limits__ConcurrentTurns"] = "2",
        ["Limits__MaxHubMessageBytes"] = "8192",
        ["Limits__AllowedOrigins__0"] = "http://allowed.example",
    };

    [Fact]
    public async Task Concurrent_turns_and_message_rate_per_user_are_limited_and_accepted_turns_complete()
    {
        var (pool, notifier) = await NotifierSystem.StartAsync(services, notifierSettings: Tight);
        await using var _ = pool;
        await using var alice = await notifier.ConnectAsync("alice");
        var session = await alice.CreateSessionAsync();
        var other = await alice.CreateSessionAsync();
        await alice.SubscribeAsync(session);
        await alice.SubscribeAsync(other);

        var accepted = new List<Guid> { await alice.SendAsync(session, "msg 1 #think=2000"), await alice.SendAsync(other, "msg 1 #think=2000") };
        var busy = await Assert.ThrowsAsync<HubException>(() => alice.SendAsync(session, "msg 2"));
        Assert.EndsWith("rate_limited: 2 replies are already running; wait for one to finish", busy.Message, StringComparison.Ordinal);
        await alice.WaitForAsync(e => accepted.All(r => e.Any(x => ChatClient.Is(x, "TurnCompleted", r))), TimeSpan.FromSeconds(20), "both turns");

        for (var n = 2; n <= 3; n++)
        {
            var requestId = await alice.SendAsync(session, $"msg {n}");
            accepted.Add(requestId);
            await alice.WaitForAsync(e => e.Any(x => ChatClient.Is(x, "TurnCompleted", requestId)), TimeSpan.FromSeconds(20), $"msg {n}");
        }

        var flooded = await Assert.ThrowsAsync<HubException>(() => alice.SendAsync(session, "msg 4"));
        Assert.EndsWith("rate_limited: more than 4 messages a minute", flooded.Message, StringComparison.Ordinal);
        await using var bob = await notifier.ConnectAsync("bob");
        var bobs = await bob.CreateSessionAsync();
        await bob.SubscribeAsync(bobs);
        var bobsRequest = await bob.SendAsync(bobs, "msg 1");
        await bob.WaitForAsync(e => e.Any(x => ChatClient.Is(x, "TurnCompleted", bobsRequest)), TimeSpan.FromSeconds(20), "bob's turn");

        Assert.Equal(4, alice.Live.Count(e => e.GetProperty("type").GetString() == "TurnCompleted"));
        Assert.Equal(5L, await pool.TurnCountAsync());
    }

    [Fact]
    public async Task Oversized_text_and_hub_messages_are_refused_without_harming_other_connections()
    {
        var (pool, notifier) = await NotifierSystem.StartAsync(services, notifierSettings: Tight);
        await using var _ = pool;
        await using var alice = await notifier.ConnectAsync("alice");
        await using var bystander = await notifier.ConnectAsync("alice");
        var session = await alice.CreateSessionAsync();

        using var http = notifier.Http("alice");
        var tooLong = await http.PostAsJsonAsync($"/api/sessions/{session}/messages", new { text = new string('x', 16_001) });
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLong.StatusCode);
        Assert.Equal("too_large", (await tooLong.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("code").GetString());

        var closed = new TaskCompletionSource<Exception?>();
        alice.Connection.Closed += e =>
        {
            closed.TrySetResult(e);
            return Task.CompletedTask;
        };
        await Assert.ThrowsAnyAsync<Exception>(() => alice.SendAsync(session, new string('x', 9000)));
        await closed.Task.WaitAsync(TimeSpan.FromSeconds(10));

        await bystander.SubscribeAsync(session);
        var requestId = await bystander.SendAsync(session, "msg 1");
        await bystander.WaitForAsync(e => e.Any(x => ChatClient.Is(x, "TurnCompleted", requestId)), TimeSpan.FromSeconds(20), "the turn");
        Assert.Equal(1L, await pool.TurnCountAsync());
    }

    [Theory]
    [InlineData("http://evil.example", false)]
    [InlineData("http://allowed.example", true)]
    public async Task Only_allowed_origins_may_open_the_websocket(string origin, bool allowed)
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        var notifier = await pool.StartNotifierAsync(Tight);
        using var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("Origin", origin);
        var uri = new Uri($"ws://{notifier.BaseAddress.Authority}/hubs/chat?access_token={NotifierProcess.Token("alice")}");
        if (allowed)
        {
            await socket.ConnectAsync(uri, CancellationToken.None);
            Assert.Equal(WebSocketState.Open, socket.State);
        }
        else
        {
            var refused = await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(uri, CancellationToken.None));
            Assert.Contains("403", refused.Message, StringComparison.Ordinal);
        }
    }
}
