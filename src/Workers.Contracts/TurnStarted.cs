namespace Workers.Contracts;

/// <summary>A worker began a turn. A second <c>TurnStarted</c> for the same request (after a worker crash)
/// means: discard the partial text seen so far for that request.</summary>
public sealed record TurnStarted : IReplyEvent
{
    /// <summary>The session.</summary>
    public required Guid SessionId { get; init; }

    /// <summary>The request being answered.</summary>
    public required Guid RequestId { get; init; }

    /// <summary>The session's owner; the notifier delivers only to this user's connections.</summary>
    public required string UserId { get; init; }

    /// <summary>Per-session event number; only grows, across turns and worker restarts.</summary>
    public required long Seq { get; init; }
}
