using System.Diagnostics;
using System.Text;
using System.Text.Json;
using RabbitMQ.Client;
using Workers.Contracts;
using Workers.Core.Hosting;
using Workers.Core.Messaging;

namespace Workers.Testing;

/// <summary>A plain AMQP client on one virtual host: publishes requests as any producer would.</summary>
public sealed class Broker : IAsyncDisposable
{
    private readonly IChannel _channel;

    private Broker(RabbitMqOptions options, TopologyOptions topology, IConnection connection, IChannel channel)
    {
        Options = options;
        Topology = topology;
        Connection = connection;
        _channel = channel;
    }

    public RabbitMqOptions Options { get; }

    public TopologyOptions Topology { get; }

    public IConnection Connection { get; }

    /// <summary>Connects and declares the request topology (the setup step's code path, so <paramref name="options"/> is
    /// an admin login), so requests published before any worker starts are kept.</summary>
    public static async Task<Broker> ConnectAsync(RabbitMqOptions options, TopologyOptions topology)
    {
        var connection = await BrokerConnections.ConnectAsync(options, "Workers.Testing", CancellationToken.None);
        var channel = await connection.CreateChannelAsync(new CreateChannelOptions(true, true));
        await RequestTopology.DeclareAsync(channel, topology, CancellationToken.None);
        return new Broker(options, topology, connection, channel);
    }

    public static ChatRequested Request(Guid session, string user, string text, Guid? requestId = null) => new()
    {
        RequestId = requestId ?? Guid.NewGuid(), SessionId = session, UserId = user, Text = text, SentAt = DateTimeOffset.UtcNow,
    };

    public Task PublishAsync(ChatRequested request) => PublishOnAsync(_channel, request);

    /// <summary>Any bytes, routed to the session's partition, as a producer in another language would send them.</summary>
    public async Task PublishRawAsync(Guid routeBySession, byte[] body) =>
        await _channel.BasicPublishAsync(Partitioning.RequestsExchange, Partitioning.RoutingKey(routeBySession, Topology.Partitions),
            mandatory: false, Persistent(), body);

    /// <summary>A <c>CancelTurn</c> as a MassTransit envelope on the control exchange, as the notifier sends it.</summary>
    public async Task PublishCancelAsync(CancelTurn cancel)
    {
        var envelope = new
        {
            messageId = Guid.NewGuid(),
            messageType = new[] { "urn:message:Workers.Contracts:CancelTurn" },
            message = cancel,
        };
        var properties = new BasicProperties { ContentType = "application/vnd.masstransit+json" };
        await _channel.BasicPublishAsync(Partitioning.ControlExchange, "", mandatory: false, properties,
            JsonSerializer.SerializeToUtf8Bytes(envelope, JsonSerializerOptions.Web));
    }

    /// <summary>A channel of its own with publisher confirms, for publishing from several tasks at once.</summary>
    public async Task<IChannel> OpenPublisherAsync() => await Connection.CreateChannelAsync(new CreateChannelOptions(true, true));

    public async Task PublishOnAsync(IChannel channel, ChatRequested request)
    {
        ArgumentNullException.ThrowIfNull(channel);
        ArgumentNullException.ThrowIfNull(request);
        var (exchange, key) = Partitioned(request);
        await channel.BasicPublishAsync(exchange, key, mandatory: false, Persistent(),
            JsonSerializer.SerializeToUtf8Bytes(request, JsonSerializerOptions.Web));
    }

    /// <summary>
    /// Publishes each session's requests in order, <paramref name="producers"/> channels at once (a session always on the
    /// same one), persistent, with publisher confirms. <paramref name="route"/> gives exchange and routing key.
    /// <paramref name="stamp"/> is called with each request as it goes out (its <c>sentAt</c> is set then).
    /// </summary>
    public async Task PublishAsync(IReadOnlyList<IReadOnlyList<ChatRequested>> perSession, int producers,
        Func<ChatRequested, (string Exchange, string RoutingKey)> route, Action<ChatRequested>? stamp = null, double ratePerSecond = 0)
    {
        ArgumentNullException.ThrowIfNull(perSession);
        ArgumentNullException.ThrowIfNull(route);
        var rounds = perSession.Max(s => s.Count);
        // Open loop: each producer publishes its share at ratePerSecond / producers, spread evenly over time.
        var interval = ratePerSecond > 0 ? TimeSpan.FromSeconds(producers / ratePerSecond) : TimeSpan.Zero;
        await Task.WhenAll(Enumerable.Range(0, producers).Select(async p =>
        {
            await using var channel = await OpenPublisherAsync();
            var mine = perSession.Where((_, i) => i % producers == p).ToList();
            var properties = Persistent();
            // Confirms are awaited in windows, so one channel keeps many publishes in flight (like a real producer).
            var window = new List<Task>(64);
            var pace = Stopwatch.StartNew();
            long sent = 0;
            for (var n = 0; n < rounds; n++)
            {
                foreach (var session in mine)
                {
                    if (n >= session.Count)
                    {
                        continue;
                    }

                    if (interval > TimeSpan.Zero)
                    {
                        var due = interval * sent;
                        if (due - pace.Elapsed > TimeSpan.FromMilliseconds(1))
                        {
                            await Task.Delay(due - pace.Elapsed);
                        }
                    }

                    sent++;
                    var request = session[n] with { SentAt = DateTimeOffset.UtcNow };
                    stamp?.Invoke(request);
                    var (exchange, key) = route(request);
                    window.Add(channel.BasicPublishAsync(exchange, key, mandatory: false, properties,
                        JsonSerializer.SerializeToUtf8Bytes(request, JsonSerializerOptions.Web)).AsTask());
                    if (window.Count == 64)
                    {
                        await Task.WhenAll(window);
                        window.Clear();
                    }
                }
            }

            await Task.WhenAll(window);
        }));
    }

    /// <summary>Where a worker pool takes the request: the requests exchange, keyed by the session's partition.</summary>
    public (string Exchange, string RoutingKey) Partitioned(ChatRequested request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return (Partitioning.RequestsExchange, Partitioning.RoutingKey(request.SessionId, Topology.Partitions));
    }

    public async Task<uint> MessageCountAsync(string queue)
    {
        var ok = await _channel.QueueDeclarePassiveAsync(queue);
        return ok.MessageCount;
    }

    public async Task<BasicGetResult?> GetAsync(string queue) => await _channel.BasicGetAsync(queue, autoAck: true);

    public static string Text(ReadOnlyMemory<byte> body) => Encoding.UTF8.GetString(body.Span);

    public async ValueTask DisposeAsync()
    {
        await _channel.DisposeAsync();
        if (Connection.IsOpen) // a fault test may have killed its node
        {
            await Connection.CloseAsync();
        }

        await Connection.DisposeAsync();
    }

    /// <summary>A request as producers send it, with the user-id of the login it is published with (the broker refuses
    /// any other). One per publish (or per channel): the client may add headers to it.</summary>
    public BasicProperties Persistent() => new() { ContentType = "application/json", Persistent = true, UserId = Options.Username };
}
