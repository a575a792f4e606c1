using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Workers.Contracts;
using Workers.Core.Hosting;
using Workers.Core.Telemetry;

namespace Workers.Core.Messaging;

public static class BrokerSettings
{
    /// <summary>The broker from <see cref="RabbitMqOptions"/> and the wire contract's exchanges: the first line of every
    /// host's <c>UsingRabbitMq</c> block.</summary>
    public static void UseWorkersBroker(this IRabbitMqBusFactoryConfigurator cfg, IBusRegistrationContext context)
    {
        ArgumentNullException.ThrowIfNull(cfg);
        ArgumentNullException.ThrowIfNull(context);
        var rabbit = context.GetRequiredService<IOptions<RabbitMqOptions>>().Value;
        cfg.Host(rabbit.Host, (ushort)rabbit.Port, rabbit.VirtualHost, h =>
        {
            h.Username(rabbit.Username);
            h.Password(rabbit.Password);
            if (!string.IsNullOrWhiteSpace(rabbit.Nodes))
            {
                // MassTransit reconnects to whichever node of the list answers when its own dies.
                h.UseCluster(c =>
                {
                    foreach (var (host, port) in rabbit.Endpoints())
                    {
                        c.Node($"{host}:{port}");
                    }
                });
            }
        });
        cfg.UseWorkersTopology(context.GetRequiredService<IOptions<TopologyOptions>>().Value.Partitions);
        // Every message says which login sent it, and the broker refuses a user-id that is not the connection's login:
        // a worker can tell (and record) which producer asserted a request's userId.
        // And the W3C trace context of the span it was sent in, so a reply event's delivery joins its request's trace.
        var login = rabbit.Username;
        cfg.ConfigurePublish(publish => publish.UseExecute(c => Stamp(c, login)));
        cfg.ConfigureSend(send => send.UseSendExecute(c => Stamp(c, login)));
    }

    /// <summary>Maps each contract type onto its exchange: requests partitioned, control and events fanned out.</summary>
    public static void UseWorkersTopology(this IRabbitMqBusFactoryConfigurator cfg, int partitions)
    {
        ArgumentNullException.ThrowIfNull(cfg);
        cfg.MessageTopology.SetEntityNameFormatter(new ContractExchangeNames(cfg.MessageTopology.EntityNameFormatter));
        cfg.Publish<ChatRequested>(p => p.ExchangeType = "direct");
        // The reply events' common shape is not a message of its own: no exchange, no binding, nothing to declare.
        cfg.Publish<IReplyEvent>(p => p.Exclude = true);
        // The events fanout ignores routing keys; the by-session exchange bound to it routes by them.
        foreach (var replyEvent in ReplyEvents.Types)
        {
            RouteEventMethod.MakeGenericMethod(replyEvent).Invoke(null, [cfg]);
        }

        // A batch goes by its first session's key; the others ride in its BCC header (DeltaBatches sets it).
        cfg.Send<ReplyDeltaBatch>(s => s.UseRoutingKeyFormatter(c => c.Message.Deltas[0].SessionId.ToString("D")));
        cfg.Send<TurnProgress>(s => s.UseRoutingKeyFormatter(_ => Partitioning.TurnProgressKey));
        cfg.Send<ChatRequested>(s => s.UseRoutingKeyFormatter(c => Partitioning.RoutingKey(c.Message.SessionId, partitions)));
    }

    private static readonly System.Reflection.MethodInfo RouteEventMethod =
        typeof(BrokerSettings).GetMethod(nameof(RouteEvent), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!;

    private static void RouteEvent<T>(IRabbitMqBusFactoryConfigurator cfg)
        where T : class, IReplyEvent =>
        cfg.Send<T>(s => s.UseRoutingKeyFormatter(c => Partitioning.EventRoutingKey(c.Message)));

    private static void Stamp(SendContext context, string login)
    {
        if (WorkersTelemetry.TryCurrent(out var traceParent, out var traceState))
        {
            context.Headers.Set(WorkersTelemetry.TraceParentHeader, traceParent);
            if (traceState is not null)
            {
                context.Headers.Set(WorkersTelemetry.TraceStateHeader, traceState);
            }
        }

        if (context.TryGetPayload<RabbitMqSendContext>(out var amqp))
        {
            amqp.BasicProperties.UserId = login;
        }
    }
}
