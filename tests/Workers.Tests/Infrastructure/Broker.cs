using System.Text;
using System.Text.Json;
using RabbitMQ.Client;
using Workers.Contracts;
using Workers.Core.Hosting;
using Workers.Core.Messaging;

namespace Workers.Tests.Infrastructure;

/// <summary>A plain AMQP client on a test's virtual host: publishes requests as any producer would.</summary>
public sealed class Broker : IAsyncDisposable
{
    private readonly IConnection _connection;
    private readonly IChannel _channel;

    private Broker(RabbitMqOptions options, TopologyOptions topology, IConnection connection, IChannel channel)
    {
        Options = options;
        Topology = topology;
        _connection = connection;
        _channel = channel;
    }

    public RabbitMqOptions Options { get; }

    public TopologyOptions Topology { get; }

    public IConnection Connection => _connection;

    public static async Task<Broker> ConnectAsync(RabbitMqOptions options, TopologyOptions topology)
    {
        var connection = await BrokerConnections.Factory(options, "tests").CreateConnectionAsync();
        var channel = await connection.CreateChannelAsync(new CreateChannelOptions(true, true));
        await RequestTopology.DeclareAsync(channel, topology, CancellationToken.None);
        return new Broker(options, topology, connection, channel);
    }

    public Task PublishAsync(ChatRequested request) =>
        PublishRawAsync(request.SessionId, JsonSerializer.SerializeToUtf8Bytes(request, JsonSerializerOptions.Web));

    /// <summary>Any bytes, routed to the session's partition, as a producer in another language would send them.</summary>
    public async Task PublishRawAsync(Guid routeBySession, byte[] body)
    {
        var properties = new BasicProperties { ContentType = "application/json", Persistent = true };
        await _channel.BasicPublishAsync(Partitioning.RequestsExchange, Partitioning.RoutingKey(routeBySession, Topology.Partitions),
            mandatory: false, properties, body);
    }

    public static ChatRequested Request(Guid session, string user, string text, Guid? requestId = null) => new()
    {
        RequestId = requestId ?? Guid.NewGuid(), SessionId = session, UserId = user, Text = text, SentAt = DateTimeOffset.UtcNow,
    };

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

    /// <summary>A channel of its own, for publishing from several tasks at once.</summary>
    public async Task<IChannel> OpenPublisherAsync() => await _connection.CreateChannelAsync(new CreateChannelOptions(true, true));

    public async Task PublishOnAsync(IChannel channel, ChatRequested request)
    {
        var properties = new BasicProperties { ContentType = "application/json", Persistent = true };
        await channel.BasicPublishAsync(Partitioning.RequestsExchange, Partitioning.RoutingKey(request.SessionId, Topology.Partitions),
            mandatory: false, properties, JsonSerializer.SerializeToUtf8Bytes(request, JsonSerializerOptions.Web));
    }

    public async Task<uint> MessageCountAsync(string queue)
    {
        var ok = await _channel.QueueDeclarePassiveAsync(queue);
        return ok.MessageCount;
    }

    public async Task<BasicGetResult?> GetAsync(string queue) => await _channel.BasicGetAsync(queue, autoAck: true);

    public async ValueTask DisposeAsync()
    {
        await _channel.DisposeAsync();
        await _connection.DisposeAsync();
    }

    public static string Text(ReadOnlyMemory<byte> body) => Encoding.UTF8.GetString(body.Span);
}
