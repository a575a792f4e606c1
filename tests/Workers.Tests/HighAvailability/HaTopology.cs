using System.Diagnostics;
using RabbitMQ.Client;
using Workers.Core.Hosting;
using Workers.Core.Messaging;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.HighAvailability;

/// <summary>
/// The HA topology of <c>services.sh up --ha</c> (3 RabbitMQ nodes, pg_auto_failover with two standbys, PgBouncer per
/// node), found through the file its <c>env</c> printed, named by <c>WORKERS_HA_ENV</c> (test.sh starts the topology
/// and sets it, with <c>WORKERS_HA_REQUIRED=1</c>). Without it the tests here are skipped, saying so.
/// </summary>
public sealed class HaTopology : IAsyncLifetime
{
    public Services? Services { get; private set; }

    public Services Require()
    {
        const string Missing = "the HA topology is not running: compose/local/services.sh up --ha, its env in a file named by WORKERS_HA_ENV";
        // test.sh starts it and says so: there, a topology that did not come up is a failure, not a skip.
        if (Services is null && Environment.GetEnvironmentVariable("WORKERS_HA_REQUIRED") == "1")
        {
            Assert.Fail(Missing);
        }

        Assert.SkipWhen(Services is null, Missing);
        return Services!;
    }

    public async ValueTask InitializeAsync() =>
        Services = await Services.FromEnvFileAsync(Environment.GetEnvironmentVariable("WORKERS_HA_ENV"), "ha");

    public async ValueTask DisposeAsync()
    {
        if (Services is not null)
        {
            await Services.DisposeAsync();
        }
    }

    /// <summary><c>services.sh fault NAME</c>; returns how long the script took.</summary>
    public static async Task<TimeSpan> FaultAsync(string name)
    {
        var clock = Stopwatch.StartNew();
        var (exit, output, errors) = await LocalServices.RunAsync($"fault {name}");
        Assert.True(exit == 0, $"services.sh fault {name} exited {exit}: {output}\n{errors}");
        return clock.Elapsed;
    }

    /// <summary>
    /// Publishes each session's requests in order, with publisher confirms, through broker faults: a publish that is not
    /// confirmed (its node died, its channel closed) is published again, with the same request id, on a new connection
    /// to a node that answers, before the session's next request. The inbox makes the repeat harmless; the count of
    /// repeats is returned, as a producer would report them. With <paramref name="restAfter"/>, only the first quarter of
    /// each session's requests goes out before that task completes.
    /// </summary>
    public static async Task<int> PublishThroughFaultsAsync(RabbitMqOptions vhost, Ordering.Load load, Broker broker, TimeSpan pause,
        CancellationToken cancellationToken, Task? restAfter = null)
    {
        var repeated = 0;
        IConnection? connection = null;
        IChannel? channel = null;
        try
        {
            for (var n = 0; n < load.PerSession; n++)
            {
                if (n == load.PerSession / 4 && restAfter is not null)
                {
                    // The first quarter goes out at once; the rest waits for the caller (a fault about to be injected),
                    // so there is load after the fault however fast the first part was done.
                    await restAfter.WaitAsync(cancellationToken);
                }

                foreach (var session in load.Requests)
                {
                    var request = session[n];
                    var (exchange, key) = broker.Partitioned(request);
                    var body = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(request, System.Text.Json.JsonSerializerOptions.Web);
                    while (true)
                    {
                        try
                        {
                            connection ??= await BrokerConnections.ConnectAsync(vhost, "ha-test producer", cancellationToken);
                            channel ??= await connection.CreateChannelAsync(new CreateChannelOptions(true, true), cancellationToken);
                            await channel.BasicPublishAsync(exchange, key, mandatory: false, broker.Persistent(), body, cancellationToken);
                            break;
                        }
                        catch (Exception e) when (e is not OperationCanceledException)
                        {
                            repeated++;
                            await DropAsync(channel, connection);
                            (channel, connection) = (null, null);
                            await Task.Delay(200, cancellationToken);
                        }
                    }
                }

                await Task.Delay(pause, cancellationToken);
            }
        }
        finally
        {
            await DropAsync(channel, connection);
        }

        return repeated;
    }

    private static async Task DropAsync(IChannel? channel, IConnection? connection)
    {
        try
        {
            if (channel is not null)
            {
                await channel.DisposeAsync();
            }

            if (connection is not null)
            {
                await connection.DisposeAsync();
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // already broken: that is why it is dropped
        }
    }
}
