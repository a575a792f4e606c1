using RabbitMQ.Client;

namespace Workers.Worker.Partitions;

/// <summary>One request as the broker delivered it on an owned partition; acked only after its turn committed.</summary>
public sealed class PartitionDelivery(PartitionConsumer source, ulong deliveryTag, byte[] body, IReadOnlyBasicProperties properties, bool redelivered)
{
    public PartitionConsumer Source { get; } = source;

    public byte[] Body { get; } = body;

    public IReadOnlyBasicProperties Properties { get; } = properties;

    public bool Redelivered { get; } = redelivered;

    /// <summary>1 for a first delivery. Quorum queues count returns in <c>x-delivery-count</c>; classic queues only
    /// flag a redelivery, so the inbox's attempt counter stands in for the count there.</summary>
    public int DeliveryCount => Properties.Headers?.TryGetValue("x-delivery-count", out var count) == true
        ? Convert.ToInt32(count, System.Globalization.CultureInfo.InvariantCulture) + 1
        : Redelivered ? 2 : 1;

    public Task AckAsync() => Source.AckAsync(deliveryTag);

    /// <summary>Leaves the message unacknowledged: the broker puts it back at the head of its queue, in order,
    /// when this partition's channel closes.</summary>
    public void Abandon() => Source.Abandon();
}
