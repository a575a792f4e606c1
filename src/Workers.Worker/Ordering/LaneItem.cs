
namespace Workers.Worker.Ordering;

/// <summary>A request waiting in its session's lane; <see cref="Run"/> processes it and acks its delivery.</summary>
public sealed record LaneItem(PartitionDelivery Delivery, Func<Task> Run);
