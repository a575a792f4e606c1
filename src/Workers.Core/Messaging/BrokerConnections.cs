using System.Net;
using System.Net.Http.Headers;
using System.Text;
using RabbitMQ.Client;
using Workers.Core.Hosting;

namespace Workers.Core.Messaging;

public static class BrokerConnections
{
    /// <summary>RabbitMQ's management API (<c>http://host:ManagementPort/api/</c>) as <paramref name="login"/>, on the
    /// first node of <see cref="RabbitMqOptions.ManagementEndpoints"/> that answers.</summary>
    public static HttpClient ManagementClient(RabbitMqOptions options, NetworkCredential login)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(login);
        var nodes = options.ManagementEndpoints();
        var http = new HttpClient(new ManagementFailover(nodes) { InnerHandler = new SocketsHttpHandler() })
        {
            BaseAddress = new Uri($"http://{nodes[0].Host}:{nodes[0].Port}/api/"), Timeout = TimeSpan.FromSeconds(10),
        };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{login.UserName}:{login.Password}")));
        return http;
    }

    /// <summary>A plain AMQP connection, for what MassTransit does not do (ordered partition consumption), to the first
    /// node of <see cref="RabbitMqOptions.Endpoints"/> that answers.</summary>
    public static Task<IConnection> ConnectAsync(RabbitMqOptions options, string clientName, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        // The client shuffles the list: connections spread over the nodes, and a dead one is skipped.
        return Factory(options, clientName).CreateConnectionAsync(
            [.. options.Endpoints().Select(e => new AmqpTcpEndpoint(e.Host, e.Port))], cancellationToken);
    }

    private static ConnectionFactory Factory(RabbitMqOptions options, string clientName)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new ConnectionFactory
        {
            HostName = options.Host,
            Port = options.Port,
            UserName = options.Username,
            Password = options.Password,
            VirtualHost = options.VirtualHost,
            ClientProvidedName = clientName,
            // Recovery would re-register consumers on a new channel while turns of the old one still run and
            // then ack stale delivery tags; the partition manager reconnects and re-acquires partitions itself.
            AutomaticRecoveryEnabled = false,
            TopologyRecoveryEnabled = false,
            RequestedHeartbeat = TimeSpan.FromSeconds(10),
        };
    }

    /// <summary>Declares the topology on a short-lived connection, with an administrative login: the setup step
    /// (<c>Workers.Migrator topology</c>) and the tests' fixture. The hosts only check it (<see cref="CheckTopologyAsync"/>).</summary>
    public static async Task DeclareTopologyAsync(RabbitMqOptions options, TopologyOptions topology, string clientName,
        CancellationToken cancellationToken)
    {
        await using var connection = await ConnectAsync(options, clientName, cancellationToken);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        await RequestTopology.DeclareAsync(channel, topology, cancellationToken);
    }

    /// <summary>At a host's start: the topology must exist, since its login may not declare it. Throws
    /// <see cref="InvalidConfigurationException"/> (one line, naming the setup command) when it is missing.</summary>
    public static async Task CheckTopologyAsync(RabbitMqOptions options, TopologyOptions topology, string clientName,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        await using var connection = await ConnectAsync(options, clientName, cancellationToken);
        await RequestTopology.CheckAsync(connection, topology, options.VirtualHost, cancellationToken);
    }

    /// <summary>Sends a management call to the node that answered last, and on to the next when it cannot connect.
    /// Only a connection failure moves on: nothing was sent, so the call is safe to make again elsewhere.</summary>
    private sealed class ManagementFailover(IReadOnlyList<(string Host, int Port)> nodes) : DelegatingHandler
    {
        private int _current;

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var first = Volatile.Read(ref _current);
            for (var attempt = 0; ; attempt++)
            {
                var node = (first + attempt) % nodes.Count;
                request.RequestUri = new UriBuilder(request.RequestUri!) { Host = nodes[node].Host, Port = nodes[node].Port }.Uri;
                try
                {
                    var response = await base.SendAsync(request, cancellationToken);
                    Volatile.Write(ref _current, node);
                    return response;
                }
                catch (HttpRequestException e) when (e.HttpRequestError == HttpRequestError.ConnectionError && attempt + 1 < nodes.Count)
                {
                }
            }
        }
    }
}
