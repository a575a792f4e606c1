using MassTransit;
using Microsoft.Extensions.Options;
using Workers.Contracts;
using Workers.Worker.Memory;
using Workers.Worker.Ordering;

namespace Workers.Worker.Turns;

/// <summary>
/// Publishes reply events to <c>workers.chat-events</c>. Deltas are transient, and with
/// <see cref="WorkerOptions.BatchDeltas"/> on they travel in <see cref="DeltaBatches"/>; the rest are durable. Each publish waits
/// at most <see cref="WorkerOptions.PublishTimeout"/> for the broker's confirmation, then throws
/// <see cref="EventPublishTimeoutException"/>: a publish whose channel broke under it (a RabbitMQ node killed) could
/// otherwise wait forever, and with it its turn, its session's lane and every request behind it.
/// </summary>
public sealed class TurnEvents(IBus bus, DeltaBatches batches, IOptions<WorkerOptions> options)
{
    private readonly TimeSpan _timeout = options.Value.PublishTimeout;
    private readonly bool _batchDeltas = options.Value.BatchDeltas;

    public Task StartedAsync(ChatRequested r, long seq, TurnMemory memory, Guid? replaces, CancellationToken cancellationToken) =>
        PublishAsync(new TurnStarted
        {
            SessionId = r.SessionId, RequestId = r.RequestId, UserId = r.UserId, Seq = seq, ContextTokens = memory.ContextTokens,
            SummarizedThroughTurn = memory.SummarizedThroughTurn, SummaryUpdated = memory.SummaryUpdated, Replaces = replaces,
            UserText = r.Text,
        }, durable: true, cancellationToken);

    public Task DeltaAsync(ChatRequested r, long seq, string text, CancellationToken cancellationToken)
    {
        var delta = new ReplyDelta { SessionId = r.SessionId, RequestId = r.RequestId, UserId = r.UserId, Seq = seq, Text = text };
        return _batchDeltas ? batches.PublishAsync(delta, cancellationToken) : PublishAsync(delta, durable: false, cancellationToken);
    }

    public Task ToolAsync(ChatRequested r, long seq, string tool, string callId, string status, double? durationMs,
        CancellationToken cancellationToken) =>
        PublishAsync(new ToolInvoked
        {
            SessionId = r.SessionId, RequestId = r.RequestId, UserId = r.UserId, Seq = seq, Tool = tool, Status = status, CallId = callId,
            DurationMs = durationMs is { } ms ? Math.Round(ms, 1) : null,
        }, durable: true, cancellationToken);

    /// <summary>A turn's last event (<see cref="Workers.Core.Sessions.TurnFinalEvent"/>): durable, like every event but deltas.</summary>
    public Task FinalAsync(IReplyEvent finalEvent) => PublishAsync(finalEvent, durable: true, CancellationToken.None);

    public Task FailedAsync(ChatRequested r, long seq, string code, string message) =>
        FailedAsync(r.SessionId, r.RequestId, r.UserId, seq, code, message);

    public Task FailedAsync(Guid sessionId, Guid requestId, string userId, long seq, string code, string message) =>
        PublishAsync(new TurnFailed
        {
            SessionId = sessionId, RequestId = requestId, UserId = userId, Seq = seq, Code = code, Message = message,
        }, durable: true, CancellationToken.None);

    // Published as object so the bus takes the runtime type (Publish<IReplyEvent> would publish the interface).
    private async Task PublishAsync(IReplyEvent replyEvent, bool durable, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_timeout);
        try
        {
            await bus.Publish((object)replyEvent, c => c.Durable = durable, timeout.Token);
        }
        catch (OperationCanceledException e) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new EventPublishTimeoutException(replyEvent.GetType().Name, _timeout, e);
        }
    }
}

/// <summary>The broker did not confirm a reply event in time: the turn is run again (the inbox makes that safe).</summary>
public sealed class EventPublishTimeoutException(string eventType, TimeSpan timeout, Exception inner)
    : Exception($"{eventType} not confirmed by the broker within {timeout.TotalSeconds:0.#} s", inner);
