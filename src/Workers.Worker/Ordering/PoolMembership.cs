using Npgsql;

namespace Workers.Worker.Ordering;

/// <summary>
/// This worker's place in the pool, kept on the lease connection: a member row renewed every tick, and a liveness
/// lock held for the worker's life, so a member whose process died is seen dead at once (its lock is gone), and one
/// that hangs after its heartbeat times out. Every live member computes the same ranking from the same rows.
/// </summary>
public sealed class PoolMembership(WorkerIdentity identity, WorkerOptions options, SessionLanes lanes)
{
    private int _memberLock;

    /// <summary>Takes a random liveness key nobody else holds, for the life of <paramref name="connection"/>.</summary>
    public async Task JoinAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        while (true)
        {
            var key = Random.Shared.Next(1, int.MaxValue);
            await using var tryLock = new NpgsqlCommand("SELECT pg_try_advisory_lock($1, $2)", connection);
            tryLock.Parameters.Add(new NpgsqlParameter { Value = LeaseLocks.MemberNamespace });
            tryLock.Parameters.Add(new NpgsqlParameter { Value = key });
            if ((bool)(await tryLock.ExecuteScalarAsync(cancellationToken))!)
            {
                _memberLock = key;
                return;
            }
        }
    }

    /// <summary>Renews this member, removes dead ones, and returns this member's rank among the live ones.</summary>
    public async Task<(int Rank, int Members)> HeartbeatAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        // Its load too, for the operator's view of the pool.
        var depth = lanes.Depth();
        await using var command = new NpgsqlBatch(connection)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand(
                    """
                    INSERT INTO workers.worker_members (worker_id, lock_key, lanes, waiting) VALUES ($1, $2, $3, $4)
                    ON CONFLICT (worker_id) DO UPDATE
                        SET heartbeat_at = now(), lock_key = EXCLUDED.lock_key, lanes = EXCLUDED.lanes, waiting = EXCLUDED.waiting
                    """)
                {
                    Parameters =
                    {
                        new NpgsqlParameter { Value = identity.Id }, new NpgsqlParameter { Value = _memberLock },
                        new NpgsqlParameter { Value = depth.Sessions }, new NpgsqlParameter { Value = depth.Waiting },
                    },
                },
                // Dead: silent for too long, or its liveness lock is gone (its connection died with it).
                new NpgsqlBatchCommand(
                    """
                    DELETE FROM workers.worker_members m
                    WHERE m.heartbeat_at < now() - $1
                       OR NOT EXISTS (SELECT 1 FROM pg_locks l
                                      WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $2::oid
                                        AND l.objid = m.lock_key::oid AND l.objsubid = 2
                                        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))
                    """)
                {
                    Parameters =
                    {
                        new NpgsqlParameter { Value = options.MemberTimeout }, new NpgsqlParameter { Value = (long)LeaseLocks.MemberNamespace },
                    },
                },
                new NpgsqlBatchCommand("SELECT worker_id FROM workers.worker_members ORDER BY worker_id"),
            },
        };
        var members = new List<string>();
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                members.Add(reader.GetString(0));
            }
        }

        var rank = members.IndexOf(identity.Id);
        return (rank < 0 ? members.Count : rank, Math.Max(1, members.Count + (rank < 0 ? 1 : 0)));
    }

    /// <summary>Leaving at once lets the others take the partitions now instead of after the member timeout.</summary>
    public async Task LeaveAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var leave = new NpgsqlCommand("DELETE FROM workers.worker_members WHERE worker_id = $1", connection);
        leave.Parameters.Add(new NpgsqlParameter { Value = identity.Id });
        await leave.ExecuteNonQueryAsync(cancellationToken);
    }
}
