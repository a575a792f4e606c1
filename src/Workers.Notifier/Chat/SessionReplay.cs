using Workers.Contracts;
using Microsoft.Extensions.Options;
using Workers.Core.Sessions;
using Workers.Notifier.Sending;
using Workers.Notifier.Sessions;

namespace Workers.Notifier.Chat;

/// <summary>
/// The events of a session after a given seq, rebuilt for a client that (re)subscribes: completed turns from
/// PostgreSQL (as that user, under RLS) and the running turn's text so far from the worker running it. A completed
/// turn replays as its <c>TurnStarted</c> (when after the seq) and its final event, whose full text supersedes deltas.
/// The caller has begun buffering live events; the worker is asked before PostgreSQL is read, so a turn that ends
/// between the two is in the database, and one that runs on is in the snapshot (what follows it is buffered).
/// The replay is capped, so one subscribe holds a bounded amount of memory whatever the history: the newest turns
/// that fit <see cref="LimitOptions.MaxReplayChars"/> (at most <see cref="MaxTurns"/>); a client pages older turns with
/// <c>GET /api/sessions/{id}/turns?afterSeq=</c>.
/// </summary>
public sealed class SessionReplay(SessionLifecycle sessions, TurnProgressQuery progress, IOptions<LimitOptions> limits)
{
    /// <summary>Completed turns one subscribe replays at most (the newest ones).</summary>
    public const int MaxTurns = 500;

    public async Task<List<ClientEvent>> AfterAsync(string userId, Guid sessionId, long afterSeq, CancellationToken cancellationToken)
    {
        var running = await progress.AskAsync(sessionId, cancellationToken);
        var events = new List<ClientEvent>();
        var (completed, replaced) = await sessions.LatestAsync(userId, sessionId, afterSeq, MaxTurns, limits.Value.MaxReplayChars, cancellationToken);
        foreach (var turn in completed)
        {
            if (turn.FirstSeq > afterSeq)
            {
                events.Add(new ClientEvent(new TurnStarted
                {
                    SessionId = sessionId, RequestId = turn.RequestId, UserId = userId, Seq = turn.FirstSeq,
                    Replaces = replaced.TryGetValue(turn.TurnNo, out var old) ? old : null, UserText = turn.UserText,
                }));
            }

            events.Add(new ClientEvent(TurnFinalEvent.Of(turn)));
        }

        if (running is { RequestId: { } requestId } && running.UserId == userId && running.LastSeq > afterSeq)
        {
            if (running.FirstSeq > afterSeq)
            {
                events.Add(new ClientEvent(new TurnStarted
                {
                    SessionId = sessionId, RequestId = requestId, UserId = userId, Seq = running.FirstSeq, Replaces = running.Replaces,
                }));
            }

            if (running.LastSeq > running.FirstSeq)
            {
                events.Add(new ClientEvent(new ReplyDelta
                {
                    SessionId = sessionId, RequestId = requestId, UserId = userId, Seq = running.LastSeq, Text = running.Text,
                }) { Snapshot = true });
            }
        }

        return events;
    }
}
