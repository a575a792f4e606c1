using Workers.Contracts;
using Workers.Core.Sessions;
using Workers.Notifier.Sessions;

namespace Workers.Notifier.Chat;

/// <summary>
/// The events of a session after a given seq, rebuilt for a client that (re)subscribes: completed turns from
/// PostgreSQL (as that user, under RLS) and the running turn's text so far from the worker running it. A completed
/// turn replays as its <c>TurnStarted</c> (when after the seq) and its final event, whose full text supersedes deltas.
/// The caller has begun buffering live events; the worker is asked before PostgreSQL is read, so a turn that ends
/// between the two is in the database, and one that runs on is in the snapshot (what follows it is buffered).
/// </summary>
public sealed class SessionReplay(SessionLifecycle sessions, TurnProgressQuery progress)
{
    public async Task<List<ClientEvent>> AfterAsync(string userId, Guid sessionId, long afterSeq, CancellationToken cancellationToken)
    {
        var running = await progress.AskAsync(sessionId, cancellationToken);
        var events = new List<ClientEvent>();
        foreach (var turn in await sessions.HistoryAsync(userId, sessionId, afterSeq, 500, cancellationToken))
        {
            if (turn.FirstSeq > afterSeq)
            {
                events.Add(new ClientEvent(nameof(TurnStarted), sessionId, turn.RequestId, userId, turn.FirstSeq));
            }

            events.Add(ClientEvent.From(TurnFinalEvent.Of(turn)));
        }

        if (running is { RequestId: { } requestId } && running.UserId == userId && running.LastSeq > afterSeq)
        {
            if (running.FirstSeq > afterSeq)
            {
                events.Add(new ClientEvent(nameof(TurnStarted), sessionId, requestId, userId, running.FirstSeq));
            }

            if (running.LastSeq > running.FirstSeq)
            {
                events.Add(new ClientEvent(nameof(ReplyDelta), sessionId, requestId, userId, running.LastSeq)
                {
                    Text = running.Text, Snapshot = true,
                });
            }
        }

        return events;
    }
}
