using System.Collections.Concurrent;
using MassTransit;
using Workers.Contracts;

namespace Workers.Notifier.Chat;

/// <summary>Asks the workers for a session's running turn and waits briefly for the owner of its partition to answer.</summary>
public sealed class TurnProgressQuery(IBus bus, ILogger<TurnProgressQuery> logger)
{
    // Long enough for a worker and a notifier that are both saturated (100 browsers resuming at once while 200 stream,
    // on 2 cores): an answer that comes later leaves a gap in the running turn's text. Only a session whose partition
    // has no owner at the moment (a hand-over) waits this long, and its turn is about to be run again anyway.
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(3);
    private readonly ConcurrentDictionary<Guid, TaskCompletionSource<TurnProgress>> _pending = new();

    /// <returns>The progress, or null when no worker answered in time (no worker running, or none owns the partition).</returns>
    public async Task<TurnProgress?> AskAsync(Guid sessionId, CancellationToken cancellationToken)
    {
        var queryId = Guid.NewGuid();
        var answer = new TaskCompletionSource<TurnProgress>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[queryId] = answer;
        try
        {
            await bus.Publish(new TurnProgressRequested { QueryId = queryId, SessionId = sessionId }, c => c.Durable = false,
                cancellationToken);
            return await answer.Task.WaitAsync(Patience, cancellationToken);
        }
        catch (TimeoutException)
        {
            logger.LogWarning("No worker answered the progress query for session {SessionId} within {Patience}: a turn running there " +
                              "replays without its text so far", sessionId, Patience);
            return null;
        }
        finally
        {
            _pending.TryRemove(queryId, out _);
        }
    }

    internal void Answer(TurnProgress progress)
    {
        if (_pending.TryGetValue(progress.QueryId, out var answer))
        {
            answer.TrySetResult(progress);
        }
    }
}
