namespace Workers.Contracts;

/// <summary>
/// The events a worker publishes to <see cref="Partitioning.EventsExchange"/> for a session's owner. The bus maps
/// each of them onto that exchange and the notifier consumes each of them and passes its fields to the browser, so a
/// new reply event (a type implementing <see cref="IReplyEvent"/>) is listed here and nowhere else in the wiring.
/// </summary>
public static class ReplyEvents
{
    /// <summary>Every reply event type.</summary>
    public static IReadOnlyList<Type> Types { get; } =
    [
        typeof(TurnStarted), typeof(ReplyDelta), typeof(ToolInvoked), typeof(TurnCompleted), typeof(TurnFailed), typeof(TurnCancelled),
    ];
}
