using System.Collections.Concurrent;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using Workers.Contracts;
using Workers.Core.Hosting;
using Workers.Core.Messaging;

namespace Workers.Tests.HighAvailability;

/// <summary>
/// A consumer of <c>workers.chat-events</c> that outlives a broker node: its queue is a quorum queue (replicated on
/// the three nodes), it acknowledges each event after recording it, and it reconnects to a node that answers when its
/// own dies. An event can then arrive twice or late, which is what the contract's rule for consumers is for
/// (<see cref="AsAConsumerSeesThem"/>).
/// </summary>
public sealed class ClusterEventConsumer : IAsyncDisposable
{
    private readonly RabbitMqOptions _vhost;
    private readonly string _queue = $"ha-test-events-{Guid.NewGuid():N}";
    private readonly ConcurrentQueue<RecordedEvent> _events = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly TaskCompletionSource _firstBound = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _loop = Task.CompletedTask;

    private ClusterEventConsumer(RabbitMqOptions vhost) => _vhost = vhost;

    public int Reconnects { get; private set; }

    /// <summary>How many of the messages were <c>ReplyDeltaBatch</c>es (with <c>Workers__BatchDeltas=true</c>).</summary>
    public int Batches => _batches;

    private int _batches;

    public IReadOnlyList<RecordedEvent> Events => [.. _events];

    public static async Task<ClusterEventConsumer> StartAsync(RabbitMqOptions vhost)
    {
        var consumer = new ClusterEventConsumer(vhost);
        consumer._loop = consumer.RunAsync();
        await consumer._firstBound.Task.WaitAsync(TimeSpan.FromSeconds(30));
        return consumer;
    }

    /// <summary>
    /// The events as the contract tells a consumer to take them, in arrival order: per session it keeps the highest seq
    /// it handled and drops an event at or below it (seq 0, a refusal outside the numbered stream, is never dropped).
    /// </summary>
    public (IReadOnlyList<RecordedEvent> Kept, int Dropped) AsAConsumerSeesThem()
    {
        var highest = new Dictionary<Guid, long>();
        var kept = new List<RecordedEvent>();
        foreach (var e in _events)
        {
            if (e.Seq != 0 && highest.TryGetValue(e.SessionId, out var seen) && e.Seq <= seen)
            {
                continue;
            }

            highest[e.SessionId] = Math.Max(e.Seq, highest.GetValueOrDefault(e.SessionId));
            kept.Add(e);
        }

        return (kept, _events.Count - kept.Count);
    }

    private async Task RunAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await using var connection = await BrokerConnections.ConnectAsync(_vhost, "ha-test events", _stop.Token);
                var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                connection.ConnectionShutdownAsync += (_, _) =>
                {
                    closed.TrySetResult();
                    return Task.CompletedTask;
                };
                await using var channel = await connection.CreateChannelAsync(cancellationToken: _stop.Token);
                await channel.ExchangeDeclareAsync(Partitioning.EventsExchange, ExchangeType.Fanout, durable: true, cancellationToken: _stop.Token);
                await channel.QueueDeclareAsync(_queue, durable: true, exclusive: false, autoDelete: false,
                    new Dictionary<string, object?> { ["x-queue-type"] = "quorum" }, cancellationToken: _stop.Token);
                await channel.QueueBindAsync(_queue, Partitioning.EventsExchange, "", cancellationToken: _stop.Token);
                await channel.BasicQosAsync(0, 500, false, _stop.Token);
                var consumer = new AsyncEventingBasicConsumer(channel);
                consumer.ReceivedAsync += async (_, e) =>
                {
                    // A ReplyDeltaBatch (Workers__BatchDeltas) counts as its deltas.
                    var (type, recordedEvents) = RecordedEvent.ParseMessage(e.Body.Span);
                    foreach (var recorded in recordedEvents)
                    {
                        _events.Enqueue(recorded);
                    }

                    if (type == nameof(Workers.Contracts.ReplyDeltaBatch))
                    {
                        Interlocked.Increment(ref _batches);
                    }

                    await channel.BasicAckAsync(e.DeliveryTag, false);
                };
                await channel.BasicConsumeAsync(_queue, autoAck: false, consumer, _stop.Token);
                _firstBound.TrySetResult();
                await closed.Task.WaitAsync(_stop.Token);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // its node died, or none answers yet: try the list again
            }

            if (!_stop.IsCancellationRequested)
            {
                Reconnects++;
                await Task.Delay(200);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _loop;
        try
        {
            await using var connection = await BrokerConnections.ConnectAsync(_vhost, "ha-test events cleanup", CancellationToken.None);
            await using var channel = await connection.CreateChannelAsync();
            await channel.QueueDeleteAsync(_queue);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // the virtual host goes with the test anyway
        }

        _stop.Dispose();
    }
}
