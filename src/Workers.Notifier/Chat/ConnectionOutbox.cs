using System.Text;
using System.Threading.Channels;
using Microsoft.AspNetCore.SignalR;
using Workers.Contracts;

namespace Workers.Notifier.Chat;

/// <summary>
/// One connection's events on their way out, written by the connection's own writer. Whoever delivers an event only
/// enqueues it, so a client that stops reading its socket slows nobody else: SignalR holds each connection's writes
/// behind a lock and a 64 KB pipe, and a delivery loop that awaited them waited for the slowest client. The queue is
/// bounded in bytes; a client that falls that far behind is disconnected and resumes from its last seq.
/// </summary>
public sealed class ConnectionOutbox
{
    private readonly Channel<ClientEvent> _queue = Channel.CreateUnbounded<ClientEvent>(
        new UnboundedChannelOptions { SingleReader = true, AllowSynchronousContinuations = false });

    private readonly ISingleClientProxy _client;
    private readonly Action _disconnect;
    private readonly long _maxBytes;
    private readonly NotifierMetrics _metrics;
    private readonly ILogger _logger;
    private long _queuedBytes;
    private int _overflowed;

    public ConnectionOutbox(string connectionId, ISingleClientProxy client, Action disconnect, long maxBytes, NotifierMetrics metrics,
        ILogger logger)
    {
        ConnectionId = connectionId;
        _metrics = metrics;
        _client = client;
        _disconnect = disconnect;
        _maxBytes = maxBytes;
        _logger = logger;
        _ = Task.Run(WriteAsync);
    }

    public string ConnectionId { get; }

    public long QueuedBytes => Interlocked.Read(ref _queuedBytes);

    /// <summary>Queues the event; false when the connection is closed or has just been closed for falling behind.</summary>
    public bool Enqueue(ClientEvent clientEvent)
    {
        ArgumentNullException.ThrowIfNull(clientEvent);
        var size = clientEvent.Utf8Json.Length;
        var queued = Interlocked.Add(ref _queuedBytes, size);
        // One event alone is always taken (a long final reply may exceed a small bound): only a backlog overflows.
        if (queued > _maxBytes && queued > size)
        {
            Interlocked.Add(ref _queuedBytes, -size);
            Overflow();
            return false;
        }

        if (_queue.Writer.TryWrite(clientEvent))
        {
            return true;
        }

        Interlocked.Add(ref _queuedBytes, -size);
        return false;
    }

    /// <summary>The connection is gone: stop writing and let go of what was queued.</summary>
    public void Close() => _queue.Writer.TryComplete();

    private void Overflow()
    {
        if (Interlocked.Exchange(ref _overflowed, 1) == 0)
        {
            _logger.LogWarning("Disconnected {ConnectionId}: more than {MaxBytes} bytes of events waiting for it (the client is not reading)",
                ConnectionId, _maxBytes);
            _metrics.SlowClientDisconnected();
            Close();
            _disconnect();
        }
    }

    /// <summary>
    /// A client that is behind gets the deltas of a turn that queued up meanwhile as one: their texts joined, the last
    /// one's seq (a client keeps only the highest seq it saw and appends delta texts, so it ends in the same state) and
    /// the first one's <c>sentAt</c> (the oldest text in it). One write instead of many is how a connection catches up.
    /// </summary>
    private ClientEvent MergeQueuedDeltas(ChannelReader<ClientEvent> reader, ClientEvent first)
    {
        if (first.Event is not ReplyDelta delta || first.Snapshot)
        {
            return first;
        }

        StringBuilder? text = null;
        var last = delta;
        while (reader.TryPeek(out var next) && next.Event is ReplyDelta more && !next.Snapshot && more.RequestId == delta.RequestId
               && more.SessionId == delta.SessionId && reader.TryRead(out _))
        {
            Interlocked.Add(ref _queuedBytes, -next.Utf8Json.Length);
            (text ??= new StringBuilder(delta.Text)).Append(more.Text);
            last = more;
        }

        return text is null ? first : new ClientEvent(last with { Text = text.ToString() }) { SentAt = first.SentAt };
    }

    private async Task WriteAsync()
    {
        var reader = _queue.Reader;
        try
        {
            while (await reader.WaitToReadAsync().ConfigureAwait(false))
            {
                while (reader.TryRead(out var clientEvent))
                {
                    Interlocked.Add(ref _queuedBytes, -clientEvent.Utf8Json.Length);
                    var sent = MergeQueuedDeltas(reader, clientEvent);
                    await _client.SendAsync("event", sent).ConfigureAwait(false);
                    if (sent.SentAt is { } sentAt && !sent.Snapshot)
                    {
                        _metrics.Delivered(sentAt);
                    }
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            // The connection closed under a write; what was queued is dropped and the client resumes by seq.
            _logger.LogDebug(e, "Writer of {ConnectionId} stopped", ConnectionId);
        }
        finally
        {
            Close();
            while (reader.TryRead(out _))
            {
            }

            Interlocked.Exchange(ref _queuedBytes, 0);
        }
    }
}
