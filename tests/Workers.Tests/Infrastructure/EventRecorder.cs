using System.Collections.Concurrent;
using System.Text.Json;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using Workers.Contracts;

namespace Workers.Tests.Infrastructure;

/// <summary>Every reply event on the test's virtual host, read from <c>workers.chat-events</c> like a notifier would.</summary>
public sealed class EventRecorder : IAsyncDisposable
{
    private readonly IChannel _channel;
    private readonly ConcurrentQueue<RecordedEvent> _events = new();

    private EventRecorder(IChannel channel) => _channel = channel;

    public IReadOnlyList<RecordedEvent> Events => [.. _events];

    public static async Task<EventRecorder> StartAsync(IConnection connection)
    {
        var channel = await connection.CreateChannelAsync();
        await channel.ExchangeDeclareAsync(Partitioning.EventsExchange, ExchangeType.Fanout, durable: true);
        var queue = (await channel.QueueDeclareAsync("", durable: false, exclusive: true, autoDelete: true)).QueueName;
        await channel.QueueBindAsync(queue, Partitioning.EventsExchange, "");
        var recorder = new EventRecorder(channel);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += (_, e) =>
        {
            recorder._events.Enqueue(RecordedEvent.Parse(e.Body.Span));
            return Task.CompletedTask;
        };
        await channel.BasicConsumeAsync(queue, autoAck: true, consumer);
        return recorder;
    }

    public IEnumerable<RecordedEvent> OfType(string type) => _events.Where(e => e.Type == type);

    public async Task WaitForAsync(Func<IReadOnlyList<RecordedEvent>, bool> condition, TimeSpan timeout, string what)
    {
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

    public async ValueTask DisposeAsync() => await _channel.DisposeAsync();
}

/// <summary>A reply event read from its MassTransit envelope.</summary>
public sealed record RecordedEvent(string Type, Guid SessionId, Guid RequestId, string UserId, long Seq, JsonElement Message, DateTime At)
{
    public string? Text => Message.TryGetProperty("text", out var t) ? t.GetString()
        : Message.TryGetProperty("partialText", out var p) ? p.GetString() : null;

    public string? Code => Message.TryGetProperty("code", out var c) ? c.GetString() : null;

    public static RecordedEvent Parse(ReadOnlySpan<byte> body)
    {
        var root = JsonDocument.Parse(body.ToArray()).RootElement;
        var type = root.GetProperty("messageType")[0].GetString()!.Split(':').Last();
        var message = root.GetProperty("message");
        return new RecordedEvent(type, message.GetProperty("sessionId").GetGuid(), message.GetProperty("requestId").GetGuid(),
            message.GetProperty("userId").GetString()!, message.GetProperty("seq").GetInt64(), message.Clone(), DateTime.UtcNow);
    }
}
