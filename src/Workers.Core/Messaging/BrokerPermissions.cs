namespace Workers.Core.Messaging;

/// <summary>
/// What each component's broker login may do on a virtual host: RabbitMQ's three regexes (configure, write, read).
/// The hosts' MassTransit endpoints have fixed name prefixes (<see cref="WorkerControlPrefix"/>,
/// <see cref="NotifierEventsPrefix"/>) so these can be exact. compose/local/services.sh repeats them for its logins:
/// change both together.
/// </summary>
public sealed record BrokerPermissions(string Configure, string Write, string Read)
{
    /// <summary>Start of each worker's own control queue (and its exchange, and MassTransit's <c>_error</c>/<c>_skipped</c>).</summary>
    public const string WorkerControlPrefix = "workers.worker-control.";

    /// <summary>Start of each notifier's own events queue (and its exchange, and MassTransit's <c>_error</c>/<c>_skipped</c>).</summary>
    public const string NotifierEventsPrefix = "workers.notifier-events.";

    /// <summary>Publishes requests and nothing else: no declare, no bind, no consume, no other exchange.</summary>
    public static BrokerPermissions Producer { get; } = new("^$", @"^workers\.chat-requests$", "^$");

    /// <summary>
    /// Consumes the partition queues and its own control queue (bound from the control fanout); publishes reply events
    /// and, through the default exchange, refusals to the error queue. MassTransit re-declares the exchanges it
    /// publishes to or binds from, hence configure on the two fanouts (passive declares are not an option there).
    /// </summary>
    public static BrokerPermissions Worker { get; } = new(
        @"^(workers\.worker-control\..*|workers\.chat-control|workers\.chat-events)$",
        @"^(workers\.worker-control\..*|workers\.chat-events|amq\.default)$",
        @"^(workers\.worker-control\..*|workers\.chat-control|workers\.chat-requests\.p[0-9]+)$");

    /// <summary>
    /// Publishes requests (as the token's user) and control messages; reads the by-session events exchange through its
    /// own queue, bound to the sessions its connections watch. Never reads a partition queue.
    /// </summary>
    public static BrokerPermissions Notifier { get; } = new(
        @"^(workers\.notifier-events\..*|workers\.chat-events\.by-session|workers\.chat-requests|workers\.chat-control)$",
        @"^(workers\.notifier-events\..*|workers\.chat-requests|workers\.chat-control)$",
        @"^(workers\.notifier-events\..*|workers\.chat-events\.by-session)$");

    /// <summary>
    /// The notifier's admin page reads queue depths with it through the management API (tag <c>management</c>): access
    /// to the virtual host, so its queues are listed, and nothing else, so it never reads, publishes or declares.
    /// </summary>
    public static BrokerPermissions Monitor { get; } = new("^$", "^$", "^$");

    /// <summary>Setup and operations only: declares the topology, reads the error queue.</summary>
    public static BrokerPermissions Admin { get; } = new(".*", ".*", ".*");
}
