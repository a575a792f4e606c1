using System.Collections.Concurrent;
using System.Text.Json;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using Workers.Contracts;
using Workers.Core.Hosting;
using Workers.Core.Messaging;

namespace Workers.Benchmarks.Infrastructure;

/// <summary>A plain AMQP client on the scenario's virtual host: publishes requests as any producer would.</summary>
internal sealed class Broker : IAsyncDisposable
{
    private Broker(RabbitMqOptions options, TopologyOptions topology, IConnection connection)
    {
        Options = options;
        Topology = topology;
        Connection = connection;
    }

    public RabbitMqOptions Options { get; }

    public TopologyOptions Topology { get; }

    public IConnection Connection { get; }

    public static async Task<Broker> ConnectAsync(RabbitMqOptions options, TopologyOptions topology)
    {
        var connection = await BrokerConnections.Factory(options, "benchmark").CreateConnectionAsync();
        await using (var channel = await connection.CreateChannelAsync())
        {
            await RequestTopology.DeclareAsync(channel, topology, CancellationToken.None);
        }

        return new Broker(options, topology, connection);
    }

    public static ChatRequested Request(Guid session, string user, string text) => new()
    {
        RequestId = Guid.NewGuid(),
        SessionId = session,
        UserId = user,
        Text = text,
        SentAt = DateTimeOffset.UtcNow,
    };

    /// <summary>
    /// Publishes each session's requests in order, <paramref name="producers"/> channels at once (a session always on the
    /// same one), persistent, with publisher confirms. <paramref name="route"/> gives exchange and routing key.
    /// <paramref name="stamp"/> is called with each request as it goes out (its <c>sentAt</c> is set then).
    /// </summary>
    public async Task PublishAsync(IReadOnlyList<IReadOnlyList<ChatRequested>> perSession, int producers,
        Func<ChatRequested, (string Exchange, string RoutingKey)> route, Action<ChatRequested>? stamp = null, double ratePerSecond = 0)
    {
        var rounds = perSession.Max(s => s.Count);
        // Open loop: each producer publishes its share at ratePerSecond / producers, spread evenly over time.
        var interval = ratePerSecond > 0 ? TimeSpan.FromSeconds(producers / ratePerSecond) : TimeSpan.Zero;
        await Task.WhenAll(Enumerable.Range(0, producers).Select(async p =>
        {
            await using var channel = await Connection.CreateChannelAsync(new CreateChannelOptions(true, true));
            var mine = perSession.Where((_, i) => i % producers == p).ToList();
            var properties = new BasicProperties { ContentType = "application/json", Persistent = true };
            // Confirms are awaited in windows, so one channel keeps many publishes in flight (like a real producer).
            var window = new List<Task>(64);
            var pace = System.Diagnostics.Stopwatch.StartNew();
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

    public (string Exchange, string RoutingKey) Partitioned(ChatRequested request) =>
        (Partitioning.RequestsExchange, Partitioning.RoutingKey(request.SessionId, Topology.Partitions));

    public async ValueTask DisposeAsync()
    {
        await Connection.CloseAsync();
        await Connection.DisposeAsync();
    }
}

/// <summary>Reply events as a notifier reads them: an exclusive queue on <c>workers.chat-events</c>.</summary>
internal sealed class EventTap : IAsyncDisposable
{
    private readonly IChannel _channel;
    private readonly ConcurrentQueue<TappedEvent> _events = new();
    private long _count;

    private EventTap(IChannel channel) => _channel = channel;

    public long Count => Interlocked.Read(ref _count);

    public IReadOnlyList<TappedEvent> Events => [.. _events];

    public static async Task<EventTap> StartAsync(IConnection connection)
    {
        var channel = await connection.CreateChannelAsync();
        await channel.ExchangeDeclareAsync(Partitioning.EventsExchange, ExchangeType.Fanout, durable: true);
        var queue = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await channel.QueueBindAsync(queue, Partitioning.EventsExchange, "");
        await channel.BasicQosAsync(0, 1000, false);
        var tap = new EventTap(channel);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += (_, e) =>
        {
            tap._events.Enqueue(TappedEvent.Parse(e.Body.Span));
            Interlocked.Increment(ref tap._count);
            return Task.CompletedTask;
        };
        await channel.BasicConsumeAsync(queue, autoAck: true, consumer);
        return tap;
    }

    public async ValueTask DisposeAsync()
    {
        await _channel.CloseAsync();
        await _channel.DisposeAsync();
    }
}

/// <summary>A reply event from its MassTransit envelope: type, ids, seq, the envelope's <c>sentTime</c>, arrival time.</summary>
internal sealed record TappedEvent(string Type, Guid SessionId, Guid RequestId, long Seq, DateTime SentTime, DateTime ReceivedAt)
{
    public static TappedEvent Parse(ReadOnlySpan<byte> body)
    {
        var received = DateTime.UtcNow;
        using var document = JsonDocument.Parse(body.ToArray());
        var root = document.RootElement;
        var type = root.GetProperty("messageType")[0].GetString()!.Split(':')[^1];
        var message = root.GetProperty("message");
        var sent = root.TryGetProperty("sentTime", out var s) && s.ValueKind == JsonValueKind.String
            ? s.GetDateTime().ToUniversalTime()
            : received;
        return new TappedEvent(type, message.GetProperty("sessionId").GetGuid(), message.GetProperty("requestId").GetGuid(),
            message.GetProperty("seq").GetInt64(), sent, received);
    }
}
