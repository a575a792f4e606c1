using System.ComponentModel.DataAnnotations;

namespace Workers.Worker.Ordering;

/// <summary>How one worker consumes; section <c>Workers</c> (shared with the topology's partition count).</summary>
public sealed class WorkerOptions
{
    public const string SectionName = "Workers";

    /// <summary>Unique per process; defaults to host name, process id and a random suffix.</summary>
    [StringLength(200)]
    public string? WorkerId { get; set; }

    /// <summary>Requests fetched ahead per owned partition, so sessions of one partition run side by side.</summary>
    [Range(1, 5000)]
    public ushort PrefetchPerPartition { get; set; } = 64;

    /// <summary>Turns this worker runs at once, across all its partitions.</summary>
    [Range(1, 10000)]
    public int MaxConcurrentTurns { get; set; } = 64;

    /// <summary>Requests of one session that may wait behind its running turn; beyond that <c>session_busy</c>.</summary>
    [Range(1, 10000)]
    public int MaxWaitingPerSession { get; set; } = 8;

    /// <summary>Deliveries after which a request that keeps failing or killing its worker is parked.</summary>
    [Range(1, 100)]
    public int MaxDeliveries { get; set; } = 5;

    /// <summary>In-place retries of a transient failure (database, model) before the turn fails.</summary>
    [Range(0, 20)]
    public int TransientRetries { get; set; } = 3;

    /// <summary>How long a turn keeps retrying, in place and holding its session's lane, while the database has no
    /// primary (a failover takes seconds); past it the turn fails like any other error.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan FailoverWindow { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Longest wait for the broker to confirm one reply event. A publish whose channel broke can wait forever
    /// (RabbitMQ.Client 7.2 loses a confirmation that races the channel's shutdown); past this the turn is run again.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:05:00")]
    public TimeSpan PublishTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Publish the deltas of all running turns together, as <c>ReplyDeltaBatch</c> messages, instead of one
    /// <c>ReplyDelta</c> message each. 1.4–2.3× the deltas per second on the same CPU (docs/benchmarks.md); off by default
    /// because consumers of the events exchange other than this version's notifiers may read only lone deltas.</summary>
    public bool BatchDeltas { get; set; }

    [Range(typeof(TimeSpan), "00:00:00.100", "00:01:00")]
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>A member whose heartbeat is older than this is dead; its partitions are shared out.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan MemberTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Longest wait for in-flight turns when a partition is handed over or the worker stops.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Call once per process: without a configured id, each call makes a new one.</summary>
    public string NewWorkerId() =>
        string.IsNullOrWhiteSpace(WorkerId) ? $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}" : WorkerId;
}
