namespace Workers.Worker.Ordering;

/// <summary>
/// What a worker should do with its partitions at one tick, as pure decisions: no database, no broker. Members are
/// ranked by id; the first P mod N own ⌈P/N⌉ partitions and the rest ⌊P/N⌋, so every partition has a place.
/// </summary>
public static class PartitionPlan
{
    /// <summary>How many of <paramref name="partitions"/> the member at <paramref name="rank"/> of
    /// <paramref name="members"/> should own.</summary>
    public static int Quota(int partitions, int members, int rank)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(members);
        return partitions / members + (rank < partitions % members ? 1 : 0);
    }

    /// <param name="partitions">P.</param>
    /// <param name="members">Live members, this one included.</param>
    /// <param name="rank">This member's place among them.</param>
    /// <param name="owned">Partitions this member consumes now.</param>
    /// <param name="broken">Owned partitions whose channel or delivery failed.</param>
    /// <param name="releasing">Partitions still being handed over (their lease not yet unlocked).</param>
    public static PartitionChanges Decide(
        int partitions, int members, int rank, IReadOnlyCollection<int> owned, IReadOnlySet<int> broken, IReadOnlySet<int> releasing)
    {
        ArgumentNullException.ThrowIfNull(owned);
        ArgumentNullException.ThrowIfNull(broken);
        ArgumentNullException.ThrowIfNull(releasing);
        var quota = Quota(partitions, members, rank);
        var giveUpNow = owned.Where(broken.Contains).Order().ToList();
        var healthy = owned.Where(p => !broken.Contains(p)).Order().ToList();
        // The highest go, so a member keeps the low end of its range and hand-overs move as few partitions as possible.
        var handOver = healthy.AsEnumerable().Reverse().Take(Math.Max(0, healthy.Count - quota)).ToList();
        var missing = Math.Max(0, quota - healthy.Count);
        var candidates = new List<int>();
        if (missing > 0)
        {
            // Start the scan where this member's share would begin, so members rarely race for the same partition.
            var start = rank * partitions / members;
            for (var i = 0; i < partitions; i++)
            {
                var partition = (start + i) % partitions;
                if (!owned.Contains(partition) && !releasing.Contains(partition))
                {
                    candidates.Add(partition);
                }
            }
        }

        return new PartitionChanges(giveUpNow, handOver, missing, candidates);
    }
}
