using MassTransit;
using Workers.Contracts;

namespace Workers.Core.Messaging;

/// <summary>
/// The exchange of each contract type, as the wire contract names it: requests on the partitioned direct exchange,
/// control messages and reply events on their fanouts. Types outside the contract keep MassTransit's names.
/// </summary>
public sealed class ContractExchangeNames(IEntityNameFormatter fallback) : IEntityNameFormatter
{
    public string FormatEntityName<T>() => typeof(T) switch
    {
        var t when t == typeof(ChatRequested) => Partitioning.RequestsExchange,
        var t when t == typeof(CancelTurn) || t == typeof(TurnProgressRequested) => Partitioning.ControlExchange,
        var t when t == typeof(TurnProgress) || t == typeof(ReplyDeltaBatch) || ReplyEvents.Types.Contains(t) => Partitioning.EventsExchange,
        _ => fallback.FormatEntityName<T>(),
    };
}
