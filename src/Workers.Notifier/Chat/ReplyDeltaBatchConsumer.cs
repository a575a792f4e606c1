using System.Diagnostics;
using MassTransit;
using Workers.Contracts;
using Workers.Core.Telemetry;

namespace Workers.Notifier.Chat;

/// <summary>
/// A worker's deltas of several turns in one message (<see cref="ReplyDeltaBatch"/>): each is delivered as if it had
/// come alone, in the batch's order. The batch reached this notifier because one of its sessions is watched here;
/// the deltas of the others find no subscriber and are dropped, and the owner check of every delivery still applies.
/// </summary>
public sealed class ReplyDeltaBatchConsumer(SessionSubscriptions subscriptions, NotifierMetrics metrics) : IConsumer<ReplyDeltaBatch>
{
    public Task Consume(ConsumeContext<ReplyDeltaBatch> context)
    {
        using var span = WorkersTelemetry.Source.StartActivity("deliver ReplyDeltaBatch", ActivityKind.Consumer);
        var connections = 0;
        var deltas = context.Message.Deltas ?? [];
        foreach (var delta in deltas)
        {
            if (delta is null)
            {
                continue;
            }

            metrics.EventReceived(nameof(ReplyDelta));
            connections += subscriptions.Deliver(new ClientEvent(delta) { SentAt = context.SentTime });
        }

        if (span is { IsAllDataRequested: true })
        {
            span.SetTag("workers.event.count", deltas.Count);
            span.SetTag("workers.connections", connections);
        }

        return Task.CompletedTask;
    }
}
