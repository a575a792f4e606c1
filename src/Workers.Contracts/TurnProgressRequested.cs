namespace Workers.Contracts;

/// <summary>
/// Asks the worker that owns a session's partition for the turn it is running now, so a client resuming mid-turn
/// (on any notifier, even one that just restarted) gets the reply text so far. Published to <c>workers.chat-control</c>.
/// </summary>
public sealed record TurnProgressRequested
{
    /// <summary>Matches the answer to the question.</summary>
    public required Guid QueryId { get; init; }

    /// <summary>The session asked about.</summary>
    public required Guid SessionId { get; init; }
}
