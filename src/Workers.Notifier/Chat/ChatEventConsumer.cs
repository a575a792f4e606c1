using MassTransit;
using Workers.Notifier.Sending;

namespace Workers.Notifier.Chat;

/// <summary>Every reply event reaches every notifier; each delivers it to its own subscribed connections.</summary>
public sealed class ChatEventConsumer<T>(SessionSubscriptions subscriptions, TurnsInFlight turnsInFlight) : IConsumer<T>
    where T : class
{
    public async Task Consume(ConsumeContext<T> context)
    {
        var clientEvent = ClientEvent.From(context.Message) with { SentAt = context.SentTime };
        turnsInFlight.Observe(clientEvent);
        await subscriptions.DeliverAsync(clientEvent);
    }
}
