using RabbitMQ.Client;
using Workers.Worker.Turns;

namespace Workers.Worker.Ordering;

/// <summary>One request as the broker delivered it on an owned partition; acked only after its turn committed. A body
/// over the size limit is not kept: <see cref="Oversized"/> says what could be read of it without copying it.</summary>
public sealed class PartitionDelivery(
    PartitionConsumer source, ulong deliveryTag, byte[] body, RequestParseResult? oversized, IReadOnlyBasicProperties properties,
    bool redelivered)
{
    // A producer sets headers: a count it forged must neither crash the consumer nor park a healthy request early.
    private const long MaxPlausibleDeliveryCount = 1_000_000;

    public byte[] Body { get; } = body;

    /// <summary>Set when the body was over <see cref="RequestParser.MaxBodyBytes"/>: the refusal, with the ids found.</summary>
    public RequestParseResult? Oversized { get; } = oversized;

    public IReadOnlyBasicProperties Properties { get; } = properties;

    public bool Redelivered { get; } = redelivered;

    public PartitionLease Lease => source.Lease;

    /// <summary>This worker no longer holds the partition for sure: its lease connection or channel was lost, or a
    /// commit was fenced. A turn still running here is then an attempt the next owner repeats: it publishes nothing
    /// more (its commit meets the epoch fence).</summary>
    public bool Fenced => source.Broken;

    /// <summary>The partition is being handed over: a request that has not started must not start here.</summary>
    public bool PartitionStopping => source.Stopping;

    /// <summary>1 for a first delivery. Quorum queues count returns in <c>x-delivery-count</c>; classic queues only
    /// flag a redelivery, so the inbox's attempt counter stands in for the count there. A header that is not a
    /// plausible count (a string, negative, huge: a producer can set it on a classic queue) counts as absent.</summary>
    public int DeliveryCount => BrokerDeliveryCount(Properties.Headers) is { } count ? (int)count + 1 : Redelivered ? 2 : 1;

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

    // One range check for every integer type the header may come as (quorum queues send a long).
    internal static long? BrokerDeliveryCount(IDictionary<string, object?>? headers) =>
        headers?.TryGetValue("x-delivery-count", out var value) == true && value is long or int or short or byte or sbyte
        && Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture) is var count and >= 0 and <= MaxPlausibleDeliveryCount
            ? count
            : null;

    /// <summary>Records the refusal in the error queue before the request is acked (so a crash repeats, never loses).</summary>
    public Task DeadLetterAsync(DeadLetter letter) => source.PublishToErrorQueueAsync(this, letter);
}
