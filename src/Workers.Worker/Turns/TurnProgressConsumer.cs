using MassTransit;
using Microsoft.Extensions.Options;
using Workers.Contracts;
using Workers.Core.Hosting;
using Workers.Worker.Ordering;

namespace Workers.Worker.Turns;

/// <summary>
/// Answers a notifier that resumes a client: the running turn's text so far, or "idle" when this worker owns the
/// session's partition and runs nothing for it. Workers that do not own the partition stay silent.
/// </summary>
public sealed class TurnProgressConsumer(ActiveTurns turns, PartitionLeaseManager leases, IOptions<TopologyOptions> topology)
    : IConsumer<TurnProgressRequested>
{
    public async Task Consume(ConsumeContext<TurnProgressRequested> context)
    {
        var question = context.Message;
        // A turn whose partition was lost is the next owner's to report (it runs the request again).
        if (turns.Running(question.SessionId) is { IsFenced: false } reply)
        {
            var (text, lastSeq) = reply.Published();
            await context.Publish(new TurnProgress
            {
                QueryId = question.QueryId, SessionId = question.SessionId, RequestId = reply.Request.RequestId,
                UserId = reply.Request.UserId, FirstSeq = reply.FirstSeq, LastSeq = lastSeq, Text = text, Replaces = reply.Replaces,
            }, c => c.Durable = false);
        }
        else if (leases.Owned.Contains(Partitioning.PartitionOf(question.SessionId, topology.Value.Partitions)))
        {
            await context.Publish(new TurnProgress { QueryId = question.QueryId, SessionId = question.SessionId },
                c => c.Durable = false);
        }
    }
}
