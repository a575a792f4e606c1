using System.Collections.Concurrent;

namespace Workers.Worker.Turns;

/// <summary>
/// The turns running in this worker, so a <c>CancelTurn</c> from the control exchange reaches one at once. A cancel
/// for a request still waiting in its lane is remembered for a while and applied when the turn starts.
/// </summary>
public sealed class ActiveTurns
{
    private static readonly TimeSpan PendingCancelLifetime = TimeSpan.FromMinutes(10);
    private readonly ConcurrentDictionary<Guid, (string UserId, CancellationTokenSource Cancel)> _running = new();
    private readonly ConcurrentDictionary<Guid, TurnReply> _bySession = new();
    private readonly ConcurrentDictionary<Guid, (string UserId, DateTimeOffset At)> _pendingCancels = new();

    public CancellationTokenSource Start(TurnReply reply)
    {
        ArgumentNullException.ThrowIfNull(reply);
        var (requestId, userId) = (reply.Request.RequestId, reply.Request.UserId);
        _bySession[reply.Request.SessionId] = reply;
        var cancel = new CancellationTokenSource();
        _running[requestId] = (userId, cancel);
        if (_pendingCancels.TryRemove(requestId, out var pending) && pending.UserId == userId)
        {
            cancel.Cancel();
        }

        return cancel;
    }

    /// <summary>The turn of <paramref name="sessionId"/> running here, if any.</summary>
    public TurnReply? Running(Guid sessionId) => _bySession.TryGetValue(sessionId, out var reply) ? reply : null;

    public void Finish(TurnReply reply)
    {
        ArgumentNullException.ThrowIfNull(reply);
        var requestId = reply.Request.RequestId;
        _bySession.TryRemove(new KeyValuePair<Guid, TurnReply>(reply.Request.SessionId, reply));
        if (_running.TryRemove(requestId, out var turn))
        {
            turn.Cancel.Dispose();
        }
    }

    /// <summary>Cancels the turn if it runs here and belongs to <paramref name="userId"/>.</summary>
    public void Cancel(Guid requestId, string userId)
    {
        if (_running.TryGetValue(requestId, out var turn))
        {
            if (turn.UserId == userId)
            {
                turn.Cancel.Cancel();
            }

            return;
        }

        var now = DateTimeOffset.UtcNow;
        foreach (var stale in _pendingCancels.Where(p => now - p.Value.At > PendingCancelLifetime))
        {
            _pendingCancels.TryRemove(stale.Key, out _);
        }

        _pendingCancels[requestId] = (userId, now);
    }
}
