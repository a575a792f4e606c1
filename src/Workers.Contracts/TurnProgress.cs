namespace Workers.Contracts;

/// <summary>
/// The answer to <see cref="TurnProgressRequested"/> from the worker owning the session's partition, on
/// <c>workers.chat-events</c>. <see cref="RequestId"/> is null when no turn of the session is running.
/// </summary>
public sealed record TurnProgress
{
    /// <summary>The question's id.</summary>
    public required Guid QueryId { get; init; }

    /// <summary>The session.</summary>
    public required Guid SessionId { get; init; }

    /// <summary>The running turn's request, or null when the session is idle.</summary>
    public Guid? RequestId { get; init; }

    /// <summary>The running turn's owner, or null when idle.</summary>
    public string? UserId { get; init; }

    /// <summary>Seq of the running turn's <see cref="TurnStarted"/>.</summary>
    public long FirstSeq { get; init; }

    /// <summary>The last seq the running turn has published; <see cref="Text"/> is the reply up to it.</summary>
    public long LastSeq { get; init; }

    /// <summary>Reply text published so far.</summary>
    public string Text { get; init; } = "";

    /// <summary>The request whose turn the running one replaces (regenerate, edit), if it does.</summary>
    public Guid? Replaces { get; init; }
}
