namespace Workers.Contracts;

/// <summary>
/// A user's message for the agent. Published to the direct exchange <c>workers.chat-requests</c> with the
/// session's partition (see <see cref="Partitioning"/>) as routing key, as a MassTransit envelope or as plain
/// JSON (<c>content_type: application/json</c>) with the same camelCase field names.
/// </summary>
public sealed record ChatRequested
{
    /// <summary>Idempotency key: delivering the same request twice yields one turn and one reply.</summary>
    public required Guid RequestId { get; init; }

    /// <summary>The session the message belongs to. An unknown id is created for <see cref="UserId"/>.</summary>
    public required Guid SessionId { get; init; }

    /// <summary>The owner of the session, 1 to 128 characters, set by the trusted publisher (never by a browser).</summary>
    public required string UserId { get; init; }

    /// <summary>The message text, 1 to 16,000 characters (empty only with <see cref="ReplaceLast"/>: regenerate).</summary>
    public required string Text { get; init; }

    /// <summary>When the user sent it, optional; used only for latency figures.</summary>
    public DateTimeOffset? SentAt { get; init; }

    /// <summary>Optional: sets the session's system prompt (kept for its later turns) before this turn, up to 8,000
    /// characters; an empty string goes back to the deployment's prompt. Absent: unchanged.</summary>
    public string? SystemPrompt { get; init; }

    /// <summary>Optional: sets the session's sampling temperature (kept), 0 to 2; the deployment may cap it lower.
    /// Absent: unchanged.</summary>
    public double? Temperature { get; init; }

    /// <summary>Optional: sets the session's model (kept) to one the deployment configures, by name: a letter or digit,
    /// then up to 63 letters, digits, <c>.</c>, <c>_</c> or <c>-</c>; an empty string goes back to the default model. A
    /// name the workers do not know fails the turn with <c>invalid_request</c>. Absent: unchanged.</summary>
    public string? Model { get; init; }

    /// <summary>Optional: sets the tool servers (MCP servers the deployment configures, by name) whose tools the
    /// session's turns offer the model (kept); an empty list: none, only the built-in notes. A name the workers do not
    /// know fails the turn with <c>invalid_request</c>. Absent: unchanged (a new session has the deployment's default set).</summary>
    public IReadOnlyList<string>? Tools { get; init; }

    /// <summary>Optional: true makes this turn replace the session's last one (regenerate: an empty <see cref="Text"/>,
    /// the last turn's own text is asked again; edit: a new text). It runs in the session's order like any request; the replaced turn is kept as a superseded version
    /// and leaves the history later turns see. A session with no turn yet refuses it with <c>invalid_request</c>.</summary>
    public bool? ReplaceLast { get; init; }
}
