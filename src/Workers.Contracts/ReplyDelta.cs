namespace Workers.Contracts;

/// <summary>Reply text produced since the previous delta of the same turn. Transient: the completed turn is
/// the durable record.</summary>
public sealed record ReplyDelta : IReplyEvent
{
    /// <summary>The session.</summary>
    public required Guid SessionId { get; init; }

    /// <summary>The request being answered.</summary>
    public required Guid RequestId { get; init; }

    /// <summary>The session's owner.</summary>
    public required string UserId { get; init; }

    /// <summary>Per-session event number.</summary>
    public required long Seq { get; init; }

    /// <summary>The text since the previous delta.</summary>
    public required string Text { get; init; }
}
