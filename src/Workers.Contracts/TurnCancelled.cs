namespace Workers.Contracts;

/// <summary>The turn was stopped by <see cref="CancelTurn"/>; the partial reply was persisted as cancelled.</summary>
public sealed record TurnCancelled : IReplyEvent
{
    /// <summary>The session.</summary>
    public required Guid SessionId { get; init; }

    /// <summary>The request whose turn stopped.</summary>
    public required Guid RequestId { get; init; }

    /// <summary>The session's owner.</summary>
    public required string UserId { get; init; }

    /// <summary>Per-session event number.</summary>
    public required long Seq { get; init; }

    /// <summary>The reply text produced before the stop.</summary>
    public required string PartialText { get; init; }
}
