using Workers.Contracts;
using Workers.Core.Sessions;

namespace Workers.Notifier.Chat;

/// <summary>
/// The events of a session after a given seq, rebuilt for a client that (re)subscribes: completed turns from
/// PostgreSQL (as that user, under RLS) and the running turn's text so far from the worker running it. A completed
/// turn replays as its <c>TurnStarted</c> (when after the seq) and its final event, whose full text supersedes deltas.
/// </summary>
public sealed class SessionReplay(SessionLifecycle sessions, TurnProgressQuery progress)
{
    public async Task<List<ClientEvent>> AfterAsync(string userId, Guid sessionId, long afterSeq, CancellationToken cancellationToken)
    {
        var events = new List<ClientEvent>();
        foreach (var turn in await sessions.HistoryAsync(userId, sessionId, afterSeq, 500, cancellationToken))
        {
            if (turn.FirstSeq > afterSeq)
            {
                events.Add(new ClientEvent(nameof(TurnStarted), sessionId, turn.RequestId, userId, turn.FirstSeq));
            }

            events.Add(turn.Status switch
            {
                TurnStatus.Complete => new ClientEvent(nameof(TurnCompleted), sessionId, turn.RequestId, userId, turn.LastSeq)
                {
                    Text = turn.ReplyText, PromptTokens = turn.PromptTokens, CompletionTokens = turn.CompletionTokens,
                },
                TurnStatus.Cancelled => new ClientEvent(nameof(TurnCancelled), sessionId, turn.RequestId, userId, turn.LastSeq)
                {
                    PartialText = turn.ReplyText,
                },
                _ => new ClientEvent(nameof(TurnFailed), sessionId, turn.RequestId, userId, turn.LastSeq)
                {
                    Code = turn.ErrorCode ?? ErrorCodes.ModelError, Message = "The model did not answer; please try again.",
                },
            });
        }

        var running = await progress.AskAsync(sessionId, cancellationToken);
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
