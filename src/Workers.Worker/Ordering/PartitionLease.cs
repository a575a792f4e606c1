namespace Workers.Worker.Ordering;

/// <summary>A partition as this worker holds it: the epoch was taken with the lease, and a turn commits only while
/// it is still the partition's current epoch.</summary>
public sealed record PartitionLease(int Partition, long Epoch);
