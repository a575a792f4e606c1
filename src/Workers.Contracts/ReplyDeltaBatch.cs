namespace Workers.Contracts;

/// <summary>
/// The <see cref="ReplyDelta"/>s of several turns, published by a worker as one message when it is set to batch deltas
/// (<c>Workers:BatchDeltas</c>). Each delta keeps its own session, request, owner and seq, and the deltas of one session
/// are in seq order. The message is routed by the first delta's session id and carries the others' in RabbitMQ's
/// <c>BCC</c> header, so it reaches every queue bound to any of its sessions once. A consumer delivers each delta as if
/// it had come alone, and ignores those of sessions it does not watch. Transient, like a lone delta.
/// </summary>
public sealed record ReplyDeltaBatch
{
    /// <summary>At least one delta; at most one per turn.</summary>
    public required IReadOnlyList<ReplyDelta> Deltas { get; init; }
}
