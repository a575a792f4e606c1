using Microsoft.Extensions.Options;
using Workers.Core.Hosting;
using Workers.Core.Messaging;

namespace Workers.Notifier;

/// <summary>
/// Declares the partition queues before the notifier publishes any request: a message published to the direct
/// exchange before its queue is bound would be dropped by the broker.
/// </summary>
public sealed class TopologyDeclaration(IOptions<RabbitMqOptions> rabbit, IOptions<TopologyOptions> topology) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) =>
        BrokerConnections.DeclareTopologyAsync(rabbit.Value, topology.Value, "notifier topology", cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
