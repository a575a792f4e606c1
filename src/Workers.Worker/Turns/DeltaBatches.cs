using System.Threading.Channels;
using MassTransit;
using Microsoft.Extensions.Options;
using Workers.Contracts;
using Workers.Worker.Ordering;

namespace Workers.Worker.Turns;

/// <summary>
/// With <see cref="WorkerOptions.BatchDeltas"/> on, the deltas of all this worker's running turns go out as
/// <see cref="ReplyDeltaBatch"/> messages: whatever deltas queued while the previous batch waited for the broker's
/// confirmation form the next one (group commit). Under load one broker message, one confirm and one notifier delivery
/// carry hundreds of deltas instead of one each; when idle a batch holds the one delta there is and leaves at once.
/// Each turn awaits its delta's batch before making the next, so a turn has at most one delta on the way and its
/// deltas stay in seq order; its tool and final events, published after that await, come after them too.
/// </summary>
public sealed class DeltaBatches : IAsyncDisposable
{
    /// <summary>Deltas per message at most: a delta holds up to <c>Llm:DeltaMaxChars</c> (200) characters, so a batch
    /// stays well under RabbitMQ's frame limits and one slow message delays no more than this many turns.</summary>
    public const int MaxDeltas = 256;

    private readonly Channel<Waiting> _queue = Channel.CreateUnbounded<Waiting>(new() { SingleReader = true });
    private readonly IBus _bus;
    private readonly TimeSpan _timeout;
    private readonly ILogger<DeltaBatches> _logger;
    private readonly Task _sending;

    public DeltaBatches(IBus bus, IOptions<WorkerOptions> options, ILogger<DeltaBatches> logger)
    {
        _bus = bus;
        _timeout = options.Value.PublishTimeout;
        _logger = logger;
        _sending = Task.Run(SendAsync);
    }

    /// <summary>Completes once the batch holding <paramref name="delta"/> was confirmed by the broker; throws
    /// <see cref="EventPublishTimeoutException"/> when it was not within the publish timeout.</summary>
    public Task PublishAsync(ReplyDelta delta, CancellationToken cancellationToken)
    {
        var waiting = new Waiting(delta, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        if (!_queue.Writer.TryWrite(waiting))
        {
            throw new OperationCanceledException("the worker is stopping");
        }

        return waiting.Confirmed.Task.WaitAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _sending;
    }

    private async Task SendAsync()
    {
        var batch = new List<Waiting>(MaxDeltas);
        while (await _queue.Reader.WaitToReadAsync())
        {
            while (batch.Count < MaxDeltas && _queue.Reader.TryRead(out var next))
            {
                batch.Add(next);
            }

            try
            {
                await PublishAsync(batch);
                foreach (var waiting in batch)
                {
                    waiting.Confirmed.TrySetResult();
                }
            }
            catch (Exception e)
            {
                _logger.LogWarning("A batch of {Count} deltas was not published: {Error}", batch.Count, e.Message);
                foreach (var waiting in batch)
                {
                    waiting.Confirmed.TrySetException(e);
                }
            }

            batch.Clear();
        }
    }

    private async Task PublishAsync(List<Waiting> batch)
    {
        var deltas = new ReplyDelta[batch.Count];
        var bcc = new HashSet<string>();
        for (var i = 0; i < batch.Count; i++)
        {
            deltas[i] = batch[i].Delta;
            if (i > 0 && deltas[i].SessionId != deltas[0].SessionId)
            {
                bcc.Add(deltas[i].SessionId.ToString("D"));
            }
        }

        using var timeout = new CancellationTokenSource(_timeout);
        try
        {
            await _bus.Publish(new ReplyDeltaBatch { Deltas = deltas }, c =>
            {
                c.Durable = false;
                if (bcc.Count > 0)
                {
                    // RabbitMQ routes a message to the queues of its routing key and of every key in BCC (once per
                    // queue), and strips BCC before delivery.
                    c.Headers.Set("BCC", bcc);
                }
            }, timeout.Token);
        }
        catch (OperationCanceledException e) when (timeout.IsCancellationRequested)
        {
            throw new EventPublishTimeoutException(nameof(ReplyDeltaBatch), _timeout, e);
        }
    }

    private sealed record Waiting(ReplyDelta Delta, TaskCompletionSource Confirmed);
}
