using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Workers.Tests.Infrastructure;
using Workers.Tests.Notifier;

namespace Workers.Tests.Operations;

/// <summary>
/// <c>GET /metrics</c> on the worker and on the notifier (Prometheus text) shows turns, their timing and tokens,
/// refusals, partitions, lanes, connections, subscriptions and delivery latency, and the counts move with the work done.
/// </summary>
[Collection("worker pools")]
public sealed class Metrics_on_every_host(ServicesFixture services)
{
    [Fact]
    public async Task Turn_partition_and_delivery_metrics_move_with_the_work_on_the_worker_and_the_notifier()
    {
        var (pool, notifier) = await NotifierSystem.StartAsync(services, new Dictionary<string, string> { ["Llm__Offline__Tokens"] = "8" });
        await using var _ = pool;
        var worker = await pool.Processes[0].WorkerAddressAsync();
        using var http = new HttpClient();
        await pool.WaitForBalanceAsync(1, TimeSpan.FromSeconds(30));
        var workerBefore = await PrometheusText.ScrapeAsync(http, worker);
        var notifierBefore = await PrometheusText.ScrapeAsync(http, notifier.BaseAddress);

        await using var alice = await notifier.ConnectAsync("alice");
        var session = await alice.CreateSessionAsync();
        await alice.SubscribeAsync(session);
        for (var i = 0; i < 3; i++)
        {
            var request = await alice.SendAsync(session, $"message {i}");
            await alice.WaitForAsync(e => e.Any(x => ChatClient.Is(x, "TurnCompleted", request)), TimeSpan.FromSeconds(20), $"reply {i}");
        }

        var refusal = await Assert.ThrowsAsync<HubException>(() => alice.SendAsync(Guid.NewGuid(), "to a session that does not exist"));
        Assert.Contains("session_not_found", refusal.Message, StringComparison.Ordinal);
        var workerAfter = await PrometheusText.ScrapeAsync(http, worker);
        var notifierAfter = await PrometheusText.ScrapeAsync(http, notifier.BaseAddress);

        double Moved(PrometheusText before, PrometheusText after, string name, params (string, string)[] labels) =>
            after.Sum(name, labels) - before.Sum(name, labels);

        // Worker: three turns started and completed, timed, with tokens; all 16 partitions owned after taking them.
        Assert.Equal(3, Moved(workerBefore, workerAfter, "workers_turns_started_total"));
        Assert.Equal(3, Moved(workerBefore, workerAfter, "workers_turns_ended_total", ("workers_turn_status", "complete")));
        Assert.Equal(3, Moved(workerBefore, workerAfter, "workers_turn_duration_seconds_count"));
        Assert.Equal(3, Moved(workerBefore, workerAfter, "workers_turn_time_to_first_token_seconds_count"));
        Assert.True(Moved(workerBefore, workerAfter, "gen_ai_client_token_usage_sum", ("gen_ai_token_type", "output")) >= 3,
            "output tokens counted");
        Assert.Equal(pool.Partitions, workerAfter.Sum("workers_partitions_owned"));
        Assert.True(workerAfter.Sum("workers_partitions_handovers_total", ("direction", "acquired")) >= pool.Partitions, "partitions acquired");
        Assert.True(workerAfter.Has("workers_lanes_active") && workerAfter.Has("workers_lanes_waiting"), "lane gauges");

        // Notifier: the events it received and delivered, the connection and its subscription, the refusal by code.
        Assert.Equal(3, Moved(notifierBefore, notifierAfter, "workers_notifier_events_received_total", ("workers_event_type", "TurnCompleted")));
        Assert.True(Moved(notifierBefore, notifierAfter, "workers_notifier_delivery_latency_seconds_count") >= 6,
            "each TurnStarted, delta and TurnCompleted delivered is timed");
        Assert.Equal(1, Moved(notifierBefore, notifierAfter, "workers_requests_refused_total", ("error_type", "session_not_found")));
        Assert.Equal(1, notifierAfter.Sum("workers_notifier_subscriptions"));
        Assert.Equal(1, notifierAfter.Sum("workers_notifier_sessions_watched"));
        Assert.Equal(1, notifierAfter.Sum("signalr_server_active_connections"));
        // The notifier's broker queue depth, sampled in the background: a scrape starts the sample the next one shows.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        PrometheusText sampled;
        while (!(sampled = await PrometheusText.ScrapeAsync(http, notifier.BaseAddress)).Has("workers_notifier_event_queue_ready"))
        {
            Assert.True(DateTime.UtcNow < deadline, "workers_notifier_event_queue_ready never appeared");
            await Task.Delay(500);
        }

        Assert.True(sampled.Sum("workers_notifier_event_queue_ready") >= 0);

        // No label carries a session or request id (unbounded cardinality) or a message's text.
        Assert.DoesNotContain(session.ToString(), workerAfter.Text + notifierAfter.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("message 0", workerAfter.Text + notifierAfter.Text, StringComparison.Ordinal);
    }
}
