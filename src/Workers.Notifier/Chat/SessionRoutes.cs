using MassTransit;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using Workers.Contracts;
using Workers.Core.Hosting;
using Workers.Core.Messaging;

namespace Workers.Notifier.Chat;

/// <summary>
/// Which sessions' events reach this notifier: its queue is bound to <see cref="Partitioning.SessionEventsExchange"/>
/// with the id of every session one of its connections watches (bound on the first watcher, unbound after the last),
/// plus <see cref="Partitioning.TurnLifecycleKey"/>. So a notifier receives the event stream of its own clients'
/// sessions, not every event of the system, and adding notifiers adds capacity. MassTransit declares the queue and
/// its fixed binding; the per-session bindings go over a plain AMQP channel of this notifier's login. The queue and its
/// bindings outlive a lost connection (durable, expiring a minute after its consumer left); should it have expired
/// meanwhile, the bindings are made again when MassTransit declares it anew.
/// </summary>
public sealed class SessionRoutes(IOptions<RabbitMqOptions> rabbit, ILogger<SessionRoutes> logger)
    : IReceiveEndpointObserver, IAsyncDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly HashSet<Guid> _bound = [];
    private IConnection? _connection;
    private IChannel? _channel;
    private long _queueReady = -1;
    private long _queueSampledAt = long.MinValue / 2;
    private int _sampling;

    /// <summary>This notifier's events queue, named at registration.</summary>
    public string Queue { get; } = $"{BrokerPermissions.NotifierEventsPrefix}{NewId.NextGuid():N}";

    /// <summary>This notifier's queue for <see cref="TurnProgress"/> answers (same prefix, so the same permissions).</summary>
    public string ProgressQueue => $"{Queue}.progress";

    /// <summary>Sessions watched here; set by <see cref="SessionSubscriptions"/>, read when deciding to unbind.</summary>
    public Func<Guid, bool> IsWatched { get; set; } = _ => false;

    /// <summary>Makes sure the session's events reach this notifier; returns once the broker confirmed the binding.</summary>
    public async Task WatchAsync(Guid sessionId, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_bound.Contains(sessionId))
            {
                return;
            }

            var channel = await ChannelAsync(cancellationToken);
            await channel.QueueBindAsync(Queue, Partitioning.SessionEventsExchange, sessionId.ToString("D"), cancellationToken: cancellationToken);
            _bound.Add(sessionId);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Called after a session lost a watcher here: unbinds it if nobody here watches it any more.</summary>
    public async Task ForgetAsync(Guid sessionId)
    {
        try
        {
            await _gate.WaitAsync();
        }
        catch (ObjectDisposedException)
        {
            return; // shutting down: the queue and its bindings expire a minute after this notifier stopped
        }

        try
        {
            if (!_bound.Contains(sessionId) || IsWatched(sessionId))
            {
                return;
            }

            var channel = await ChannelAsync(CancellationToken.None);
            await channel.QueueUnbindAsync(Queue, Partitioning.SessionEventsExchange, sessionId.ToString("D"));
            _bound.Remove(sessionId);
        }
        catch (Exception e) when (e is RabbitMQ.Client.Exceptions.RabbitMQClientException or IOException or OperationCanceledException)
        {
            // A binding left behind only brings events this notifier drops (nobody here watches the session).
            logger.LogWarning("Could not unbind session {SessionId} from {Queue}: {Error}", sessionId, Queue, e.Message);
        }
        finally
        {
            _gate.Release();
        }
    }

    public async Task Ready(ReceiveEndpointReady ready)
    {
        ArgumentNullException.ThrowIfNull(ready);
        if (!ready.InputAddress.AbsolutePath.EndsWith(Queue, StringComparison.Ordinal))
        {
            return;
        }

        // The endpoint (re)started, after a lost connection perhaps long enough for the queue to expire with its
        // bindings: bind every watched session again (binding is idempotent).
        await _gate.WaitAsync();
        try
        {
            if (_bound.Count == 0)
            {
                return;
            }

            var channel = await ChannelAsync(CancellationToken.None);
            foreach (var sessionId in _bound)
            {
                await channel.QueueBindAsync(Queue, Partitioning.SessionEventsExchange, sessionId.ToString("D"));
            }

            logger.LogInformation("Bound {Count} watched sessions to {Queue} again", _bound.Count, Queue);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Messages waiting (ready) in this notifier's events queue as last sampled, or null before the first sample. A
    /// read older than two seconds starts the next sample (a passive declare on the routes' channel), so the metric
    /// costs one broker round trip per scrape and never blocks it.
    /// </summary>
    public long? QueueReady()
    {
        if (Environment.TickCount64 - Interlocked.Read(ref _queueSampledAt) > 2000 && Interlocked.Exchange(ref _sampling, 1) == 0)
        {
            _ = SampleQueueAsync();
        }

        return Interlocked.Read(ref _queueReady) is >= 0 and var ready ? ready : null;
    }

    private async Task SampleQueueAsync()
    {
        try
        {
            await _gate.WaitAsync();
            try
            {
                var channel = await ChannelAsync(CancellationToken.None);
                Interlocked.Exchange(ref _queueReady, (await channel.QueueDeclarePassiveAsync(Queue)).MessageCount);
            }
            finally
            {
                _gate.Release();
            }
        }
        catch (Exception e) when (e is RabbitMQ.Client.Exceptions.RabbitMQClientException or IOException or ObjectDisposedException)
        {
            logger.LogDebug("Could not sample the depth of {Queue}: {Error}", Queue, e.Message);
        }
        finally
        {
            Interlocked.Exchange(ref _queueSampledAt, Environment.TickCount64);
            Interlocked.Exchange(ref _sampling, 0);
        }
    }

    public Task Stopping(ReceiveEndpointStopping stopping) => Task.CompletedTask;

    public Task Completed(ReceiveEndpointCompleted completed) => Task.CompletedTask;

    public Task Faulted(ReceiveEndpointFaulted faulted) => Task.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        if (_channel is not null)
        {
            await _channel.DisposeAsync();
        }

        if (_connection is not null)
        {
            await _connection.DisposeAsync();
        }

        _gate.Dispose();
    }

    /// <summary>One channel, used under the gate; opened again after a failure.</summary>
    private async Task<IChannel> ChannelAsync(CancellationToken cancellationToken)
    {
        if (_channel is { IsOpen: true })
        {
            return _channel;
        }

        if (_connection is not { IsOpen: true })
        {
            if (_connection is not null)
            {
                await _connection.DisposeAsync();
            }

            _connection = await BrokerConnections.ConnectAsync(rabbit.Value, "notifier session routes", cancellationToken);
        }

        _channel = await _connection.CreateChannelAsync(cancellationToken: cancellationToken);
        return _channel;
    }
}
