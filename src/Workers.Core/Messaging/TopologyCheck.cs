using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Workers.Core.Hosting;

namespace Workers.Core.Messaging;

public static class TopologyCheck
{
    /// <summary>
    /// Checks, before a host starts anything (its bus included), that the setup step declared the topology: the host's
    /// login cannot declare it, and a request published to the direct exchange before its partition queue exists would
    /// be dropped. A missing piece throws <see cref="InvalidConfigurationException"/>: one line, naming the setup command.
    /// </summary>
    public static async Task CheckBrokerTopologyAsync(this IHost host)
    {
        ArgumentNullException.ThrowIfNull(host);
        var services = host.Services;
        await BrokerConnections.CheckTopologyAsync(services.GetRequiredService<IOptions<RabbitMqOptions>>().Value,
            services.GetRequiredService<IOptions<TopologyOptions>>().Value,
            $"{services.GetRequiredService<IHostEnvironment>().ApplicationName} topology check", CancellationToken.None);
    }
}
