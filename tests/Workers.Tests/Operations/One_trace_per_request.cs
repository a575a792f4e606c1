using System.Text.Json;
using Workers.Tests.Infrastructure;
using Workers.Tests.Notifier;

namespace Workers.Tests.Operations;

/// <summary>
/// With <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> set, a message sent in the hub is one trace: the hub call and the publish on
/// the notifier, the worker's turn (which reads the request's <c>traceparent</c> header itself), its two transactions and
/// the model call, and the notifier's delivery of every reply event. The spans are received over OTLP/HTTP by the test.
/// </summary>
[Collection("worker pools")]
public sealed class One_trace_per_request(ServicesFixture services)
{
    private const int Server = 2, Client = 3, Producer = 4, Consumer = 5;

    [Fact]
    public async Task A_message_sent_in_the_hub_is_one_trace_through_the_worker_and_back_to_each_events_delivery()
    {
        using var receiver = OtlpReceiver.Start();
        var worker = receiver.Settings();
        worker["Llm__Offline__Tokens"] = "8";
        // The notifier logs JSON lines with their scopes: the fields of each message and the trace it was written in.
        var notifierSettings = receiver.Settings();
        notifierSettings["Logging__Console__FormatterName"] = "json";
        notifierSettings["Logging__Console__FormatterOptions__IncludeScopes"] = "true";
        var (pool, notifier) = await NotifierSystem.StartAsync(services, worker, notifierSettings);
        await using var _ = pool;
        await using var alice = await notifier.ConnectAsync("alice");
        await using var bob = await notifier.ConnectAsync("bob");
        var aliceSession = await alice.CreateSessionAsync();
        var bobSession = await bob.CreateSessionAsync();
        await alice.SubscribeAsync(aliceSession);
        await bob.SubscribeAsync(bobSession);
        const string secret = "my locker code is 4711";
        var aliceRequest = await alice.SendAsync(aliceSession, secret);
        var bobRequest = await bob.SendAsync(bobSession, "hello");
        await alice.WaitForAsync(e => e.Any(x => ChatClient.Is(x, "TurnCompleted", aliceRequest)), TimeSpan.FromSeconds(20), "Alice's reply");
        await bob.WaitForAsync(e => e.Any(x => ChatClient.Is(x, "TurnCompleted", bobRequest)), TimeSpan.FromSeconds(20), "Bob's reply");

        var spans = await receiver.WaitForAsync(all => Turn(all, aliceRequest) is { } turn && Turn(all, bobRequest) is not null
                && all.Any(s => s.TraceId == turn.TraceId && s.Name == "deliver TurnCompleted"),
            TimeSpan.FromSeconds(20), "both turns' spans and the delivery of Alice's TurnCompleted");
        var aliceTurn = Turn(spans, aliceRequest)!;
        var trace = spans.Where(s => s.TraceId == aliceTurn.TraceId).ToList();
        ReceivedSpan Only(string service, string name) =>
            Assert.Single(trace, s => s.Service == service && s.Name == name);

        // Notifier: the hub call, and the publish of the request inside it; the worker's turn is the publish's child.
        var publish = Only("Workers.Notifier", "publish chat request");
        Assert.Equal(Producer, publish.Kind);
        Assert.Equal(aliceSession.ToString(), publish.Attributes["workers.session.id"]);
        var hubCall = Assert.Single(trace, s => s.SpanId == publish.ParentSpanId);
        Assert.Equal(("Workers.Notifier", Server), (hubCall.Service, hubCall.Kind));
        Assert.Equal(publish.SpanId, aliceTurn.ParentSpanId);
        Assert.Equal(Consumer, aliceTurn.Kind);

        // Worker: both transactions with their database commands, and the model call, inside the turn.
        var load = Only("Workers.Worker", "load session");
        var commit = Only("Workers.Worker", "commit turn");
        var model = Only("Workers.Worker", "chat offline");
        Assert.All([load, commit, model], s => Assert.Equal(aliceTurn.SpanId, s.ParentSpanId));
        Assert.Equal(Client, model.Kind);
        Assert.Equal("chat", model.Attributes["gen_ai.operation.name"]);
        Assert.Contains(trace, s => s.Scope == "Npgsql" && s.ParentSpanId == load.SpanId);
        Assert.Contains(trace, s => s.Scope == "Npgsql" && s.ParentSpanId == commit.SpanId);

        // Back on the notifier: every reply event's delivery, for this request, a child of the span that published it:
        // the model call streams the start and the deltas, the turn publishes its outcome after the commit.
        var deliveries = trace.Where(s => s.Service == "Workers.Notifier" && s.Name.StartsWith("deliver ", StringComparison.Ordinal)).ToList();
        Assert.Contains(deliveries, s => s.Name == "deliver TurnStarted");
        Assert.Contains(deliveries, s => s.Name == "deliver ReplyDelta");
        Assert.Contains(deliveries, s => s.Name == "deliver TurnCompleted");
        Assert.All(deliveries, s =>
        {
            Assert.Equal(s.Name == "deliver TurnCompleted" ? aliceTurn.SpanId : model.SpanId, s.ParentSpanId);
            Assert.Equal(aliceRequest.ToString(), s.Attributes["workers.request.id"]);
        });
        var aliceEvents = alice.Live.Count(e => ChatClient.Is(e, "ReplyDelta", aliceRequest) || ChatClient.Is(e, "TurnStarted", aliceRequest)
                                                || ChatClient.Is(e, "TurnCompleted", aliceRequest));
        Assert.True(deliveries.Count >= aliceEvents, $"{deliveries.Count} delivery spans for {aliceEvents} events Alice received");

        // The notifier's log line for the publish names the session and the request as fields, and the trace.
        var logLine = notifier.Process.Log.Select(l => l.StartsWith('{') ? JsonDocument.Parse(l).RootElement : default)
            .Single(l => l.ValueKind == JsonValueKind.Object && l.GetProperty("State").TryGetProperty("RequestId", out var id)
                         && id.GetString() == aliceRequest.ToString());
        Assert.Equal(aliceSession.ToString(), logLine.GetProperty("State").GetProperty("SessionId").GetString());
        Assert.Contains(logLine.GetProperty("Scopes").EnumerateArray(),
            s => s.TryGetProperty("TraceId", out var traceId) && traceId.GetString() == aliceTurn.TraceId);
        Assert.DoesNotContain(notifier.Process.Log.Concat(pool.Processes[0].Log), l => l.Contains("locker", StringComparison.Ordinal));

        // Bob's request is a trace of its own; nothing of his is in Alice's, and no span carries a message's text.
        var bobTurn = Turn(spans, bobRequest)!;
        Assert.NotEqual(aliceTurn.TraceId, bobTurn.TraceId);
        Assert.DoesNotContain(trace, s => s.Attributes.TryGetValue("workers.session.id", out var id) && id == bobSession.ToString());
        Assert.DoesNotContain(spans, s => s.Attributes.Values.Any(v => v.Contains("locker", StringComparison.Ordinal)));
    }

    private static ReceivedSpan? Turn(IReadOnlyList<ReceivedSpan> spans, Guid requestId) =>
        spans.FirstOrDefault(s => s.Service == "Workers.Worker" && s.Name == "chat turn"
                                  && s.Attributes.GetValueOrDefault("workers.request.id") == requestId.ToString());
}
