using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Workers.Contracts;
using Workers.Core.Hosting;

namespace Workers.Core.Messaging;

public static class BusRegistration
{
    /// <summary>MassTransit on RabbitMQ with the exchange names of the wire contract.</summary>
    public static IServiceCollection AddWorkersBus(
        this IServiceCollection services, Action<IBusRegistrationConfigurator> addConsumers,
        Action<IBusRegistrationContext, IRabbitMqBusFactoryConfigurator>? configureEndpoints)
    {
        // Start only once the bus (and every receive endpoint) is up: a notifier that says ready must already be bound
        // to the events exchange, or a client subscribing at once would miss events.
        services.AddOptions<MassTransitHostOptions>().Configure(o =>
        {
            o.WaitUntilStarted = true;
            o.StartTimeout = TimeSpan.FromSeconds(60);
            o.StopTimeout = TimeSpan.FromSeconds(30);
        });
        services.AddMassTransit(x =>
        {
            addConsumers(x);
            x.UsingRabbitMq((context, cfg) =>
            {
                var rabbit = context.GetRequiredService<IOptions<RabbitMqOptions>>().Value;
                var topology = context.GetRequiredService<IOptions<TopologyOptions>>().Value;
                cfg.Host(rabbit.Host, (ushort)rabbit.Port, rabbit.VirtualHost, h =>
                {
                    h.Username(rabbit.Username);
                    h.Password(rabbit.Password);
                });
                cfg.UseWorkersTopology(topology.Partitions);
                configureEndpoints?.Invoke(context, cfg);
            });
        });
        return services;
    }

    /// <summary>Maps each contract type onto its exchange: requests partitioned, control and events fanned out.</summary>
    public static void UseWorkersTopology(this IRabbitMqBusFactoryConfigurator cfg, int partitions)
    {
        ArgumentNullException.ThrowIfNull(cfg);
        cfg.Message<ChatRequested>(m => m.SetEntityName(Partitioning.RequestsExchange));
        cfg.Publish<ChatRequested>(p => p.ExchangeType = "direct");
        cfg.Send<ChatRequested>(s => s.UseRoutingKeyFormatter(c => Partitioning.RoutingKey(c.Message.SessionId, partitions)));
        cfg.Message<CancelTurn>(m => m.SetEntityName(Partitioning.ControlExchange));
        cfg.Message<TurnProgressRequested>(m => m.SetEntityName(Partitioning.ControlExchange));
        cfg.Message<TurnProgress>(m => m.SetEntityName(Partitioning.EventsExchange));
        cfg.Message<TurnStarted>(m => m.SetEntityName(Partitioning.EventsExchange));
        cfg.Message<ReplyDelta>(m => m.SetEntityName(Partitioning.EventsExchange));
        cfg.Message<ToolInvoked>(m => m.SetEntityName(Partitioning.EventsExchange));
        cfg.Message<TurnCompleted>(m => m.SetEntityName(Partitioning.EventsExchange));
        cfg.Message<TurnFailed>(m => m.SetEntityName(Partitioning.EventsExchange));
        cfg.Message<TurnCancelled>(m => m.SetEntityName(Partitioning.EventsExchange));
    }
}
