using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Workers.Core.Hosting;

namespace Workers.Core.Messaging;

/// <summary>
/// Checks, before a host consumes or publishes anything, that the setup step declared the topology: a request published
/// to the direct exchange before its partition queue exists would be dropped, and the host's login cannot declare it.
/// A missing piece stops the start with one line naming the setup command.
/// </summary>
public sealed class TopologyCheck(IOptions<RabbitMqOptions> rabbit, IOptions<TopologyOptions> topology, IHostEnvironment environment)
    : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) =>
        BrokerConnections.CheckTopologyAsync(rabbit.Value, topology.Value, $"{environment.ApplicationName} topology check",
            cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
