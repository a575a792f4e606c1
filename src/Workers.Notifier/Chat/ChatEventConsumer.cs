using System.Diagnostics;
using MassTransit;
using Workers.Contracts;
using Workers.Core.Telemetry;
using Workers.Notifier.Sending;

namespace Workers.Notifier.Chat;

/// <summary>Every reply event of a watched session reaches this notifier; it delivers it to its own subscribed connections.</summary>
public sealed class ChatEventConsumer<T>(SessionSubscriptions subscriptions, TurnsInFlight turnsInFlight, NotifierMetrics metrics) : IConsumer<T>
    where T : class, IReplyEvent
{
    private static readonly string SpanName = $"deliver {typeof(T).Name}";

    public Task Consume(ConsumeContext<T> context)
    {
        // A span per event, in the trace of the turn that published it (its traceparent header).
        using var span = WorkersTelemetry.Source.StartActivity(SpanName, ActivityKind.Consumer, WorkersTelemetry.ParentFrom(
            context.Headers.Get<string>(WorkersTelemetry.TraceParentHeader), context.Headers.Get<string>(WorkersTelemetry.TraceStateHeader)));
        var clientEvent = new ClientEvent(context.Message) { SentAt = context.SentTime };
        metrics.EventReceived(typeof(T).Name);
        turnsInFlight.Observe(clientEvent);
        var connections = subscriptions.Deliver(clientEvent);
        if (span is { IsAllDataRequested: true })
        {
            span.SetTag(WorkersTelemetry.SessionIdTag, context.Message.SessionId);
            span.SetTag(WorkersTelemetry.RequestIdTag, context.Message.RequestId);
            span.SetTag("workers.event.seq", context.Message.Seq);
            span.SetTag("workers.connections", connections);
        }

        return Task.CompletedTask;
    }
}
