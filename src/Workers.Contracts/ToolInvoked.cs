namespace Workers.Contracts;

/// <summary>The agent called a tool during a turn: once when the call starts (<see cref="Status"/> <c>started</c>) and
/// once when it ends. Carries the tool's name and outcome, never its arguments or result.</summary>
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

    /// <summary><c>started</c>, then <c>ok</c>, <c>error</c> (the tool failed; the model was told) or <c>timeout</c> (it
    /// did not answer in time; the model was told), or <c>cancelled</c> (the turn ended while it ran).</summary>
    public required string Status { get; init; }

    /// <summary>The call's id, the same on its start and its end (a turn may call the same tool more than once).</summary>
    public string? CallId { get; init; }

    /// <summary>On the end: how long the call took, in milliseconds.</summary>
    public double? DurationMs { get; init; }
}
