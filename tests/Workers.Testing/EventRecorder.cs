using System.Collections.Concurrent;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using Workers.Contracts;

namespace Workers.Testing;

/// <summary>Every reply event on a virtual host, read from <c>workers.chat-events</c> like a notifier would.</summary>
public sealed class EventRecorder : IAsyncDisposable
{
    private readonly IChannel _channel;
    private readonly ConcurrentQueue<RecordedEvent> _events = new();
    private readonly ConcurrentQueue<IReadOnlyList<RecordedEvent>> _batches = new();

    private EventRecorder(IChannel channel) => _channel = channel;

    public IReadOnlyList<RecordedEvent> Events => [.. _events];

    /// <summary>The deltas of each <c>ReplyDeltaBatch</c> message (they are in <see cref="Events"/> too, one by one).</summary>
    public IReadOnlyList<IReadOnlyList<RecordedEvent>> Batches => [.. _batches];

    /// <summary>Binds an exclusive queue to the events exchange: only events published from now on are recorded.</summary>
    public static async Task<EventRecorder> StartAsync(IConnection connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var channel = await connection.CreateChannelAsync();
        await channel.ExchangeDeclareAsync(Partitioning.EventsExchange, ExchangeType.Fanout, durable: true);
        var queue = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await channel.QueueBindAsync(queue, Partitioning.EventsExchange, "");
        var recorder = new EventRecorder(channel);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += (_, e) =>
        {
            var (type, events) = RecordedEvent.ParseMessage(e.Body.Span);
            foreach (var recorded in events)
            {
                recorder._events.Enqueue(recorded);
            }

            if (type == nameof(ReplyDeltaBatch))
            {
                recorder._batches.Enqueue(events);
            }
            return Task.CompletedTask;
        };
        await channel.BasicConsumeAsync(queue, autoAck: true, consumer);
        return recorder;
    }

    public IEnumerable<RecordedEvent> OfType(string type) => _events.Where(e => e.Type == type);

    public async Task WaitForAsync(Func<IReadOnlyList<RecordedEvent>, bool> condition, TimeSpan timeout, string what)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var deadline = DateTime.UtcNow + timeout;
        while (!condition(Events))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out after {timeout} waiting for {what}; {_events.Count} events recorded");
            }

            await Task.Delay(50);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _channel.CloseAsync();
        await _channel.DisposeAsync();
    }
}
