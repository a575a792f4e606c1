namespace Workers.Tests.Ordering;

/// <summary>Tests that start worker processes run one at a time: the machine has two cores.</summary>
[CollectionDefinition("worker pools")]
public sealed class WorkerPoolsRunOneAtATime;
