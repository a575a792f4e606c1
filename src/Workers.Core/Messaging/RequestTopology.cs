using RabbitMQ.Client;
using Workers.Contracts;
using Workers.Core.Hosting;

namespace Workers.Core.Messaging;

/// <summary>
/// Declares the request side of the wire contract: the direct exchange, P partition queues with single active
/// consumer, the error queue, and the control and event exchanges. Idempotent. Declared once by the setup step with an
/// administrative login (<c>Workers.Migrator topology</c>); the hosts' least-privilege logins may not declare it and
/// only check it (<see cref="CheckAsync"/>).
/// </summary>
public static class RequestTopology
{
    /// <summary>Where malformed, failed and parked requests go, with the reason in <c>MT-Fault-*</c> headers.</summary>
    public const string ErrorQueue = Partitioning.RequestsExchange + "_error";

    public static async Task DeclareAsync(IChannel channel, TopologyOptions topology, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(channel);
        ArgumentNullException.ThrowIfNull(topology);
        await channel.ExchangeDeclareAsync(Partitioning.RequestsExchange, ExchangeType.Direct, durable: true, autoDelete: false,
            cancellationToken: cancellationToken);
        await channel.ExchangeDeclareAsync(Partitioning.ControlExchange, ExchangeType.Fanout, durable: true, autoDelete: false,
            cancellationToken: cancellationToken);
        await channel.ExchangeDeclareAsync(Partitioning.EventsExchange, ExchangeType.Fanout, durable: true, autoDelete: false,
            cancellationToken: cancellationToken);
        await channel.ExchangeDeclareAsync(Partitioning.SessionEventsExchange, ExchangeType.Direct, durable: true, autoDelete: false,
            cancellationToken: cancellationToken);
        await channel.ExchangeBindAsync(Partitioning.SessionEventsExchange, Partitioning.EventsExchange, "", cancellationToken: cancellationToken);
        var arguments = new Dictionary<string, object?>
        {
            ["x-queue-type"] = topology.QueueType,
            // The safety net under the partition leases: even if two workers believed they owned a partition,
            // the broker delivers its queue to one consumer at a time.
            ["x-single-active-consumer"] = true,
        };
        for (var partition = 0; partition < topology.Partitions; partition++)
        {
            var queue = Partitioning.QueueName(partition);
            await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments,
                cancellationToken: cancellationToken);
            await channel.QueueBindAsync(queue, Partitioning.RequestsExchange, Partitioning.RoutingKey(partition),
                cancellationToken: cancellationToken);
        }

        try
        {
            // Bounded in time and size: it holds ids and reasons only, but nothing should pile up there forever.
            await channel.QueueDeclareAsync(ErrorQueue, durable: true, exclusive: false, autoDelete: false,
                new Dictionary<string, object?>
                {
                    ["x-queue-type"] = topology.QueueType,
                    ["x-message-ttl"] = (long)topology.ErrorQueueTtl.TotalMilliseconds,
                    ["x-max-length"] = topology.ErrorQueueMaxLength,
                    ["x-overflow"] = "drop-head",
                }, cancellationToken: cancellationToken);
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException e) when (e.ShutdownReason?.ReplyCode == 406)
        {
            // An error queue declared by an earlier version, without the limits: queue arguments cannot change in
            // place. It keeps working; README says how to replace it. (This channel is closed now; it was the last step.)
        }
    }

    /// <summary>Passive declares (they need no permission) of every exchange and queue a host relies on.</summary>
    /// <exception cref="InvalidConfigurationException">Something is missing: one line naming it and the setup command.</exception>
    public static async Task CheckAsync(IConnection connection, TopologyOptions topology, string virtualHost,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(topology);
        var names = new List<(bool Exchange, string Name)>
        {
            (true, Partitioning.RequestsExchange), (true, Partitioning.ControlExchange), (true, Partitioning.EventsExchange),
            (true, Partitioning.SessionEventsExchange), (false, ErrorQueue),
        };
        names.AddRange(Enumerable.Range(0, topology.Partitions).Select(p => (false, Partitioning.QueueName(p))));
        foreach (var (exchange, name) in names)
        {
            // A failed passive declare closes its channel: one channel per check.
            await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
            try
            {
                if (exchange)
                {
                    await channel.ExchangeDeclarePassiveAsync(name, cancellationToken);
                }
                else
                {
                    await channel.QueueDeclarePassiveAsync(name, cancellationToken);
                }
            }
            catch (RabbitMQ.Client.Exceptions.OperationInterruptedException e) when (e.ShutdownReason?.ReplyCode == 404)
            {
                throw new InvalidConfigurationException(
                    $"broker topology missing on virtual host '{virtualHost}': {(exchange ? "exchange" : "queue")} '{name}' not found " +
                    $"(Workers:Partitions is {topology.Partitions}); run the setup step 'Workers.Migrator topology' with the admin login");
            }
        }
    }
}
