namespace Workers.Worker.Ordering;

/// <summary>One tick's decisions for a worker's partitions.</summary>
/// <param name="GiveUpNow">Broken: released without draining; the broker returns their unacked requests in order.</param>
/// <param name="HandOver">Above the quota: drained (turns in flight finish and ack), then released.</param>
/// <param name="Missing">How many more partitions to take.</param>
/// <param name="Candidates">Partitions to try, in order, until <paramref name="Missing"/> are taken; another member may
/// hold some of them.</param>
public sealed record PartitionChanges(IReadOnlyList<int> GiveUpNow, IReadOnlyList<int> HandOver, int Missing, IReadOnlyList<int> Candidates);
