using MassTransit;
using Workers.Contracts;
using Workers.Notifier.Sending;

namespace Workers.Notifier.Chat;

/// <summary>Every reply event reaches every notifier; each delivers it to its own subscribed connections.</summary>
public sealed class ChatEventConsumer<T>(SessionSubscriptions subscriptions, TurnsInFlight turnsInFlight) : IConsumer<T>
    where T : class, IReplyEvent
{
    public Task Consume(ConsumeContext<T> context)
    {
        var clientEvent = new ClientEvent(context.Message) { SentAt = context.SentTime };
        turnsInFlight.Observe(clientEvent);
        subscriptions.Deliver(clientEvent);
        return Task.CompletedTask;
    }
}
