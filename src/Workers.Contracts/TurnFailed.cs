namespace Workers.Contracts;

/// <summary>A request could not be answered. The session's later requests still run.</summary>
public sealed record TurnFailed : IReplyEvent
{
    /// <summary>The session.</summary>
    public required Guid SessionId { get; init; }

    /// <summary>The request that failed.</summary>
    public required Guid RequestId { get; init; }

    /// <summary>The session's owner as the request named it.</summary>
    public required string UserId { get; init; }

    /// <summary>Per-session event number; 0 when the request was refused before its session was read (unknown or not
    /// the user's session, malformed, busy, parked): such a failure is outside the session's numbered stream.</summary>
    public required long Seq { get; init; }

    /// <summary>A stable code from <see cref="ErrorCodes"/>.</summary>
    public required string Code { get; init; }

    /// <summary>A message safe to show to the user: no stack trace, provider detail or secret.</summary>
    public required string Message { get; init; }
}
