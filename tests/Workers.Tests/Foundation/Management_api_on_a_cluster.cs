using System.Net;
using System.Net.Sockets;
using Workers.Core.Hosting;
using Workers.Core.Messaging;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Foundation;

/// <summary>
/// The management API client (the operator page, the migrator's logins step, the tests' fixture) outlives a dead node of
/// <c>RabbitMq:ManagementNodes</c>: a call its node refuses is made on the next one. A fault test once failed on this
/// when the node it killed was the one whose API the fixture called.
/// </summary>
[Collection("worker pools")]
public sealed class Management_api_on_a_cluster(ServicesFixture services)
{
    [Fact]
    public async Task A_call_the_first_node_refuses_is_answered_by_the_next()
    {
        var rabbit = services.Services.Rabbit;
        var dead = $"127.0.0.1:{ClosedPort()}";
        var login = new NetworkCredential(rabbit.Username, rabbit.Password);
        var alive = rabbit.ManagementEndpoints()[0];

        using var alone = BrokerConnections.ManagementClient(With(rabbit, dead), login);
        var refused = await Assert.ThrowsAsync<HttpRequestException>(() => alone.GetAsync(new Uri("overview", UriKind.Relative)));
        Assert.Equal(HttpRequestError.ConnectionError, refused.HttpRequestError);

        using var cluster = BrokerConnections.ManagementClient(With(rabbit, $"{dead},{alive.Host}:{alive.Port}"), login);
        for (var call = 0; call < 2; call++)
        {
            using var response = await cluster.GetAsync(new Uri("overview", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }

    private static RabbitMqOptions With(RabbitMqOptions rabbit, string managementNodes) => new()
    {
        Host = rabbit.Host, Port = rabbit.Port, Username = rabbit.Username, Password = rabbit.Password,
        ManagementPort = rabbit.ManagementPort, ManagementNodes = managementNodes,
    };

    /// <summary>A loopback port nothing listens on (one the kernel just handed out and took back).</summary>
    private static int ClosedPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
