namespace Workers.Contracts;

/// <summary>The agent called a tool during a turn. Carries the tool's name and outcome, never its data.</summary>
public sealed record ToolInvoked : IReplyEvent
{
    /// <summary>The session.</summary>
    public required Guid SessionId { get; init; }

    /// <summary>The request being answered.</summary>
    public required Guid RequestId { get; init; }

    /// <summary>The session's owner.</summary>
    public required string UserId { get; init; }

    /// <summary>Per-session event number.</summary>
    public required long Seq { get; init; }

    /// <summary>Plugin and function, e.g. <c>notes.remember</c>.</summary>
    public required string Tool { get; init; }

    /// <summary><c>ok</c> or <c>error</c>.</summary>
    public required string Status { get; init; }
}
