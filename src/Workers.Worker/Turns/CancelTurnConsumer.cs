using MassTransit;
using Microsoft.Extensions.Options;
using Workers.Contracts;
using Workers.Core.Hosting;
using Workers.Worker.Ordering;

namespace Workers.Worker.Turns;

/// <summary>Every worker hears every <see cref="CancelTurn"/>; the one running the turn stops it.</summary>
public sealed class CancelTurnConsumer(ActiveTurns turns, PartitionLeaseManager leases, IOptions<TopologyOptions> topology)
    : IConsumer<CancelTurn>
{
    public Task Consume(ConsumeContext<CancelTurn> context)
    {
        var cancel = context.Message;
        // Only the partition's owner can ever start the request, so only it remembers a cancel that came early.
        var owns = leases.Owned.Contains(Partitioning.PartitionOf(cancel.SessionId, topology.Value.Partitions));
        turns.Cancel(cancel.SessionId, cancel.RequestId, cancel.UserId, owns);
        return Task.CompletedTask;
    }
}
