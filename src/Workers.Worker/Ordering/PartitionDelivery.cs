using RabbitMQ.Client;

namespace Workers.Worker.Ordering;

/// <summary>One request as the broker delivered it on an owned partition; acked only after its turn committed.</summary>
public sealed class PartitionDelivery(PartitionConsumer source, ulong deliveryTag, byte[] body, IReadOnlyBasicProperties properties, bool redelivered)
{
    public byte[] Body { get; } = body;

    public IReadOnlyBasicProperties Properties { get; } = properties;

    public bool Redelivered { get; } = redelivered;

    public PartitionLease Lease => source.Lease;

    /// <summary>The partition is being handed over: a request that has not started must not start here.</summary>
    public bool PartitionStopping => source.Stopping;

    /// <summary>1 for a first delivery. Quorum queues count returns in <c>x-delivery-count</c>; classic queues only
    /// flag a redelivery, so the inbox's attempt counter stands in for the count there.</summary>
    public int DeliveryCount => Properties.Headers?.TryGetValue("x-delivery-count", out var count) == true
        ? Convert.ToInt32(count, System.Globalization.CultureInfo.InvariantCulture) + 1
        : Redelivered ? 2 : 1;

    public Task AckAsync() => source.AckAsync(deliveryTag);

    /// <summary>Leaves the message unacknowledged: the broker puts it back at the head of its queue, in order,
    /// when this partition's channel closes.</summary>
    public void Abandon() => source.Abandon();

    /// <summary>Leaves this request unacked and stops the whole partition here, so nothing behind it runs first: the
    /// broker returns it and everything after it, in order, to the next owner.</summary>
    public void GiveUpPartition()
    {
        source.MarkBroken();
        source.Abandon();
    }

    /// <summary>Copies the request to the error queue with the reason, before it is acked (so a crash repeats, never loses).</summary>
    public Task DeadLetterAsync(string code, string reason, Exception? exception) =>
        source.PublishToErrorQueueAsync(this, code, reason, exception);
}
