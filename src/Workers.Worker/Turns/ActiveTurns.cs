using System.Collections.Concurrent;

namespace Workers.Worker.Turns;

/// <summary>
/// The turns running in this worker, so a <c>CancelTurn</c> from the control exchange reaches one at once. A turn is
/// known by its session and request together, and a cancel applies only to a turn of the same session and user: a
/// request id alone (which a producer chooses) must never reach someone else's turn. A cancel for a request still
/// waiting in its lane is remembered for a while, only by the worker that owns the session's partition, and only
/// so many of them.
/// </summary>
public sealed class ActiveTurns
{
    public const int MaxPendingCancels = 1024;
    private static readonly TimeSpan PendingCancelLifetime = TimeSpan.FromMinutes(10);
    private readonly ConcurrentDictionary<(Guid Session, Guid Request), (string UserId, CancellationTokenSource Cancel)> _running = new();
    private readonly ConcurrentDictionary<Guid, TurnReply> _bySession = new();
    private readonly Dictionary<(Guid Session, Guid Request), (string UserId, DateTimeOffset At)> _pendingCancels = [];
    private readonly Queue<(Guid Session, Guid Request)> _pendingOrder = new();

    public CancellationTokenSource Start(TurnReply reply)
    {
        ArgumentNullException.ThrowIfNull(reply);
        var key = (reply.Request.SessionId, reply.Request.RequestId);
        var userId = reply.Request.UserId;
        _bySession[reply.Request.SessionId] = reply;
        var cancel = new CancellationTokenSource();
        _running[key] = (userId, cancel);
        lock (_pendingCancels)
        {
            if (_pendingCancels.Remove(key, out var pending) && pending.UserId == userId
                && DateTimeOffset.UtcNow - pending.At <= PendingCancelLifetime)
            {
                cancel.Cancel();
            }
        }

        return cancel;
    }

    /// <summary>The turn of <paramref name="sessionId"/> running here, if any.</summary>
    public TurnReply? Running(Guid sessionId) => _bySession.TryGetValue(sessionId, out var reply) ? reply : null;

    public void Finish(TurnReply reply)
    {
        ArgumentNullException.ThrowIfNull(reply);
        _bySession.TryRemove(new KeyValuePair<Guid, TurnReply>(reply.Request.SessionId, reply));
        if (_running.TryRemove((reply.Request.SessionId, reply.Request.RequestId), out var turn))
        {
            turn.Cancel.Dispose();
        }
    }

    /// <summary>Cancels the turn if it runs here and belongs to <paramref name="userId"/>; otherwise, when
    /// <paramref name="ownsSession"/> (this worker owns the session's partition, so the request can only start here),
    /// remembers the cancel for when it starts.</summary>
    public void Cancel(Guid sessionId, Guid requestId, string userId, bool ownsSession)
    {
        var key = (sessionId, requestId);
        if (_running.TryGetValue(key, out var turn))
        {
            if (turn.UserId == userId)
            {
                turn.Cancel.Cancel();
            }

            return;
        }

        if (!ownsSession)
        {
            return;
        }

        lock (_pendingCancels)
        {
            // Oldest first out: expired ones always, live ones only when the bound is reached.
            while (_pendingOrder.TryPeek(out var oldest)
                   && (_pendingOrder.Count >= MaxPendingCancels || !_pendingCancels.TryGetValue(oldest, out var entry)
                       || DateTimeOffset.UtcNow - entry.At > PendingCancelLifetime))
            {
                _pendingCancels.Remove(_pendingOrder.Dequeue());
            }

            if (_pendingCancels.TryAdd(key, (userId, DateTimeOffset.UtcNow)))
            {
                _pendingOrder.Enqueue(key);
            }
        }
    }
}
