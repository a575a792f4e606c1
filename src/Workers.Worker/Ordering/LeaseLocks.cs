namespace Workers.Worker.Ordering;

/// <summary>
/// The first key of the two-int PostgreSQL advisory locks the pool takes: fixed namespaces, so other users of
/// advisory locks in the same database cannot collide with ours. Operators and tests read leases through them.
/// </summary>
public static class LeaseLocks
{
    /// <summary>A partition's lease: <c>pg_try_advisory_lock(PartitionNamespace, partition)</c>.</summary>
    public const int PartitionNamespace = 0x57524B52; // "WRKR"

    /// <summary>A member's liveness: held for the worker's life under a random key recorded in its member row.</summary>
    public const int MemberNamespace = 0x57524B4D; // "WRKM"
}
