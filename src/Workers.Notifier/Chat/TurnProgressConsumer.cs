using MassTransit;
using Workers.Contracts;

namespace Workers.Notifier.Chat;

public sealed class TurnProgressConsumer(TurnProgressQuery query) : IConsumer<TurnProgress>
{
    public Task Consume(ConsumeContext<TurnProgress> context)
    {
        query.Answer(context.Message);
        return Task.CompletedTask;
    }
}
