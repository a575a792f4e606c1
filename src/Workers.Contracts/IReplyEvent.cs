namespace Workers.Contracts;

/// <summary>
/// What every reply event carries: whose session it belongs to and its place in that session's event stream. The
/// notifier routes and orders by these four fields alone, and hands the rest of an event to the browser as it is,
/// so a new reply event is a contract type implementing this and an entry in <see cref="ReplyEvents.Types"/>.
/// </summary>
public interface IReplyEvent
{
    /// <summary>The session.</summary>
    Guid SessionId { get; }

    /// <summary>The request being answered.</summary>
    Guid RequestId { get; }

    /// <summary>The session's owner; the notifier delivers only to this user's connections.</summary>
    string UserId { get; }

    /// <summary>Per-session event number; only grows, across turns and worker restarts. 0 for a refusal issued before
    /// the session was read (it is outside the numbered stream).</summary>
    long Seq { get; }
}
