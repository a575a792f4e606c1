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

    /// <summary>The prompt this turn sends, estimated in tokens (system prompt, summary, earlier turns, the message).
    /// Null from workers before it was reported.</summary>
    public int? ContextTokens { get; init; }

    /// <summary>The prompt carries a summary of the session's turns 1 to this one instead of their text (the older
    /// turns no longer fit the model's window); null when it carries every earlier turn.</summary>
    public long? SummarizedThroughTurn { get; init; }

    /// <summary>This turn first folds older turns into that summary (one extra model call before the reply); the
    /// summary is stored with the turn, so later turns reuse it.</summary>
    public bool? SummaryUpdated { get; init; }

    /// <summary>The request whose turn this one replaces (regenerate, edit): a client shows this turn in its place.
    /// Null for a new turn.</summary>
    public Guid? Replaces { get; init; }

    /// <summary>The user's message this turn answers (for a regenerate, the replaced turn's), so a client that did not
    /// send it (another tab or device) can show it. Null from workers before it was sent, and in a replay of a turn
    /// still running.</summary>
    public string? UserText { get; init; }
}
