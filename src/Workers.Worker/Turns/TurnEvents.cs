using MassTransit;
using Workers.Contracts;
using Workers.Worker.Memory;

namespace Workers.Worker.Turns;

/// <summary>Publishes reply events to <c>workers.chat-events</c>. Deltas are transient; the rest are durable.</summary>
public sealed class TurnEvents(IBus bus)
{
    public Task StartedAsync(ChatRequested r, long seq, TurnMemory memory, CancellationToken cancellationToken) =>
        bus.Publish(new TurnStarted
        {
            SessionId = r.SessionId, RequestId = r.RequestId, UserId = r.UserId, Seq = seq, ContextTokens = memory.ContextTokens,
            SummarizedThroughTurn = memory.SummarizedThroughTurn, SummaryUpdated = memory.SummaryUpdated,
        }, cancellationToken);

    public Task DeltaAsync(ChatRequested r, long seq, string text, CancellationToken cancellationToken) =>
        bus.Publish(new ReplyDelta { SessionId = r.SessionId, RequestId = r.RequestId, UserId = r.UserId, Seq = seq, Text = text },
            c => c.Durable = false, cancellationToken);

    public Task ToolAsync(ChatRequested r, long seq, string tool, string status, CancellationToken cancellationToken) =>
        bus.Publish(new ToolInvoked
        {
            SessionId = r.SessionId, RequestId = r.RequestId, UserId = r.UserId, Seq = seq, Tool = tool, Status = status,
        }, cancellationToken);

    /// <summary>A turn's last event (<see cref="Workers.Core.Sessions.TurnFinalEvent"/>): durable, like every event but deltas.
    /// Published as <see cref="object"/> so the bus takes its runtime type (Publish&lt;IReplyEvent&gt; would publish the interface).</summary>
    public Task FinalAsync(IReplyEvent finalEvent) => bus.Publish((object)finalEvent, CancellationToken.None);

    public Task FailedAsync(ChatRequested r, long seq, string code, string message) =>
        FailedAsync(r.SessionId, r.RequestId, r.UserId, seq, code, message);

    public Task FailedAsync(Guid sessionId, Guid requestId, string userId, long seq, string code, string message) =>
        bus.Publish(new TurnFailed
        {
            SessionId = sessionId, RequestId = requestId, UserId = userId, Seq = seq, Code = code, Message = message,
        }, CancellationToken.None);
}
