using MassTransit;
using Workers.Contracts;

namespace Workers.Worker.Turns;

/// <summary>Every worker hears every <see cref="CancelTurn"/>; the one running the turn stops it.</summary>
public sealed class CancelTurnConsumer(ActiveTurns turns) : IConsumer<CancelTurn>
{
    public Task Consume(ConsumeContext<CancelTurn> context)
    {
        turns.Cancel(context.Message.RequestId, context.Message.UserId);
        return Task.CompletedTask;
    }
}
