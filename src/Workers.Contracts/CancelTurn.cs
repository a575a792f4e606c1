namespace Workers.Contracts;

/// <summary>
/// Stops a running turn. Published to the fanout exchange <c>workers.chat-control</c>, so it reaches the worker
/// running the turn at once instead of waiting behind the session's queue. The partial reply is kept.
/// </summary>
public sealed record CancelTurn
{
    /// <summary>The session of the turn.</summary>
    public required Guid SessionId { get; init; }

    /// <summary>The request whose turn to stop.</summary>
    public required Guid RequestId { get; init; }

    /// <summary>Who asks; must be the session's owner, or the cancel is ignored.</summary>
    public required string UserId { get; init; }
}
