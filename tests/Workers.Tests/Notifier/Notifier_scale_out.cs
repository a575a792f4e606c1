using Microsoft.AspNetCore.SignalR.Client;
using Workers.Contracts;
using Workers.Core.Messaging;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Notifier;

/// <summary>
/// A notifier receives the event stream of the sessions its own connections watch, not every event of the system,
/// so a second notifier adds capacity instead of doubling everyone's work. Turn starts and ends still reach every
/// notifier (each counts its users' running turns).
/// </summary>
[Collection("worker pools")]
public sealed class Notifier_scale_out(ServicesFixture services)
{
    [Fact]
    public async Task Each_notifier_is_routed_only_the_sessions_its_connections_watch_and_lets_go_of_them_after_the_last()
    {
        var (pool, first) = await NotifierSystem.StartAsync(services, new Dictionary<string, string> { ["Llm__Offline__Tokens"] = "30" });
        await using var _ = pool;
        var second = await pool.StartNotifierAsync();
        await using var alice = await first.ConnectAsync("alice");
        await using var bob = await second.ConnectAsync("bob");
        var aliceSession = await alice.CreateSessionAsync();
        var bobSession = await bob.CreateSessionAsync();
        await alice.SubscribeAsync(aliceSession);
        await bob.SubscribeAsync(bobSession);

        var routes = await BindingsAsync(pool);
        Assert.Equal(2, routes.Count);
        // Progress answers reach every notifier on a queue of its own, never behind its events.
        var progress = await ProgressBindingsAsync(pool);
        Assert.Equal(2, progress.Count);
        Assert.All(progress.Values, keys => Assert.True(keys.SetEquals([Partitioning.TurnProgressKey])));
        Assert.Contains(routes.Values, keys => keys.SetEquals([Partitioning.TurnLifecycleKey, aliceSession.ToString("D")]));
        Assert.Contains(routes.Values, keys => keys.SetEquals([Partitioning.TurnLifecycleKey, bobSession.ToString("D")]));

        // Both stream through their own notifier, each complete and only their own.
        var requests = new[] { await alice.SendAsync(aliceSession, "hello"), await bob.SendAsync(bobSession, "hi") };
        await alice.WaitForAsync(e => e.Any(x => ChatClient.Is(x, "TurnCompleted", requests[0])), TimeSpan.FromSeconds(20), "Alice's reply");
        await bob.WaitForAsync(e => e.Any(x => ChatClient.Is(x, "TurnCompleted", requests[1])), TimeSpan.FromSeconds(20), "Bob's reply");
        Assert.All(alice.Live, e => Assert.Equal(aliceSession, e.GetProperty("sessionId").GetGuid()));
        Assert.All(bob.Live, e => Assert.Equal(bobSession, e.GetProperty("sessionId").GetGuid()));
        Assert.Contains(alice.Live, e => ChatClient.Is(e, "ReplyDelta", requests[0]));

        // A second watcher on the same notifier keeps the route; the last one leaving removes it.
        var aliceAgain = await first.ConnectAsync("alice");
        await aliceAgain.SubscribeAsync(aliceSession);
        await alice.Connection.InvokeAsync("Unsubscribe", aliceSession.ToString());
        Assert.Contains((await BindingsAsync(pool)).Values, keys => keys.Contains(aliceSession.ToString("D")));
        await aliceAgain.DisposeAsync();
        await WaitUntilAsync(async () => !(await BindingsAsync(pool)).Values.Any(keys => keys.Contains(aliceSession.ToString("D"))),
            "the route of Alice's session to be removed after her last connection left");
    }

    /// <summary>Each notifier's events queue and its routing keys (its queue for progress answers apart).</summary>
    private async Task<Dictionary<string, HashSet<string>>> BindingsAsync(WorkersSystem pool) =>
        (await services.Services.BindingsAsync(pool.Broker.Options.VirtualHost, BrokerPermissions.NotifierEventsPrefix, Partitioning.SessionEventsExchange))
        .Where(q => !q.Key.EndsWith(".progress", StringComparison.Ordinal)).ToDictionary();

    private async Task<Dictionary<string, HashSet<string>>> ProgressBindingsAsync(WorkersSystem pool) =>
        (await services.Services.BindingsAsync(pool.Broker.Options.VirtualHost, BrokerPermissions.NotifierEventsPrefix, Partitioning.SessionEventsExchange))
        .Where(q => q.Key.EndsWith(".progress", StringComparison.Ordinal)).ToDictionary();

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(100);
        }
    }
}
