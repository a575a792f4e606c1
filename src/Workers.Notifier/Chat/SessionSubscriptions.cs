using System.Collections.Concurrent;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using Workers.Notifier.Sending;

namespace Workers.Notifier.Chat;

/// <summary>
/// Which connection watches which session, and the delivery of events to them. A connection is added only after its
/// user's ownership of the session was checked in PostgreSQL; an event goes only to connections of the session whose
/// user is the event's owner. While a subscription replays history, live events for it are held back and merged
/// into the replay by seq, so the client gets each event after its last seq once, in order. Delivery only queues an
/// event on the connection's <see cref="ConnectionOutbox"/>; it never waits for a client.
/// </summary>
public sealed class SessionSubscriptions
{
    private readonly ConcurrentDictionary<Guid, ConcurrentDictionary<string, Subscriber>> _bySession = new();
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<Guid, Subscriber>> _byConnection = new();
    private readonly ConcurrentDictionary<string, ConnectionOutbox> _outboxes = new();
    private readonly IHubContext<ChatHub> _hub;
    private readonly IOptions<LimitOptions> _limits;
    private readonly SessionRoutes _routes;
    private readonly ILogger<ConnectionOutbox> _logger;
    private readonly NotifierMetrics _metrics;

    public SessionSubscriptions(IHubContext<ChatHub> hub, IOptions<LimitOptions> limits, SessionRoutes routes, NotifierMetrics metrics,
        ILogger<ConnectionOutbox> logger)
    {
        _hub = hub;
        _metrics = metrics;
        _limits = limits;
        _routes = routes;
        _logger = logger;
        routes.IsWatched = _bySession.ContainsKey;
    }

    /// <summary>A connection opened: gives it its outbox, whose overflow closes the connection.</summary>
    public void Connect(HubCallerContext connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var outbox = new ConnectionOutbox(connection.ConnectionId, _hub.Clients.Client(connection.ConnectionId), connection.Abort,
            _limits.Value.MaxQueuedBytesPerConnection, _metrics, _logger);
        _outboxes[connection.ConnectionId] = outbox;
    }

    /// <summary>
    /// Registers a subscription in replay mode (live events are buffered until <see cref="GoLive"/>) and returns once
    /// the session's events are routed to this notifier, so nothing published after that is missed.
    /// </summary>
    public async Task<Subscriber> BeginAsync(string connectionId, string userId, Guid sessionId, long afterSeq, CancellationToken cancellationToken)
    {
        var outbox = _outboxes.TryGetValue(connectionId, out var open) ? open
            : throw new InvalidOperationException($"connection {connectionId} is not open");
        var subscriber = new Subscriber(outbox, userId, sessionId, afterSeq);
        lock (_bySession)
        {
            _bySession.GetOrAdd(sessionId, _ => new())[connectionId] = subscriber;
        }

        _byConnection.GetOrAdd(connectionId, _ => new())[sessionId] = subscriber;
        try
        {
            await _routes.WatchAsync(sessionId, cancellationToken);
        }
        catch
        {
            Remove(connectionId, sessionId);
            throw;
        }

        return subscriber;
    }

    /// <summary>Merges the replay with what arrived meanwhile; from now on events go straight to the connection.</summary>
    public static IReadOnlyList<ClientEvent> GoLive(Subscriber subscriber, IEnumerable<ClientEvent> replay)
    {
        ArgumentNullException.ThrowIfNull(subscriber);
        lock (subscriber.Gate)
        {
            var merged = replay.Concat(subscriber.Buffer)
                .Where(e => e.Seq > subscriber.LastSeq || e.Seq == 0)
                .GroupBy(e => e.Seq == 0 ? (object)(e.RequestId, e.Type) : e.Seq).Select(g => g.First())
                .OrderBy(e => e.Seq)
                .ToList();
            subscriber.Buffer.Clear();
            subscriber.LastSeq = Math.Max(subscriber.LastSeq, merged.Count > 0 ? merged.Max(e => e.Seq) : 0);
            subscriber.Live = true;
            return merged;
        }
    }

    public void Remove(string connectionId, Guid sessionId)
    {
        if (_byConnection.TryGetValue(connectionId, out var sessions))
        {
            sessions.TryRemove(sessionId, out _);
        }

        lock (_bySession)
        {
            // Sessions nobody watches any more are dropped, so the map follows the connections, not history.
            if (_bySession.TryGetValue(sessionId, out var connections) && connections.TryRemove(connectionId, out _) && connections.IsEmpty)
            {
                _bySession.TryRemove(sessionId, out _);
                _ = _routes.ForgetAsync(sessionId);
            }
        }
    }

    public void RemoveConnection(string connectionId)
    {
        if (_outboxes.TryRemove(connectionId, out var outbox))
        {
            outbox.Close();
        }

        if (_byConnection.TryRemove(connectionId, out var sessions))
        {
            foreach (var sessionId in sessions.Keys)
            {
                Remove(connectionId, sessionId);
            }
        }
    }

    /// <summary>Watched sessions, subscriptions and bytes waiting in outboxes, for the metrics.</summary>
    public (int Sessions, int Subscriptions, long QueuedBytes) Counts() =>
        (_bySession.Count, _byConnection.Values.Sum(s => s.Count), _outboxes.Values.Sum(o => o.QueuedBytes));

    /// <summary>Called for each event in the order this notifier's queue delivers them (one at a time).</summary>
    /// <returns>How many connections it was queued for.</returns>
    public int Deliver(ClientEvent clientEvent)
    {
        ArgumentNullException.ThrowIfNull(clientEvent);
        if (!_bySession.TryGetValue(clientEvent.SessionId, out var subscribers))
        {
            return 0;
        }

        var queued = 0;
        foreach (var subscriber in subscribers.Values)
        {
            // The owner check on every event, not only at subscribe: a subscription never sees another user's event.
            if (subscriber.UserId != clientEvent.UserId)
            {
                continue;
            }

            lock (subscriber.Gate)
            {
                if (!subscriber.Live)
                {
                    subscriber.Buffer.Add(clientEvent);
                    continue;
                }

                // Seq 0 marks a refusal issued before the session was read (session_busy, invalid_request, ...): it is
                // not part of the numbered stream, so it is neither deduplicated nor replayed, only delivered.
                if (clientEvent.Seq != 0 && clientEvent.Seq <= subscriber.LastSeq)
                {
                    continue;
                }

                subscriber.LastSeq = Math.Max(subscriber.LastSeq, clientEvent.Seq);
                // Queued under the gate, so two deliveries for one subscriber cannot swap places on the way in.
                if (subscriber.Outbox.Enqueue(clientEvent))
                {
                    queued++;
                }
            }
        }

        return queued;
    }

    public sealed class Subscriber(ConnectionOutbox outbox, string userId, Guid sessionId, long afterSeq)
    {
        public ConnectionOutbox Outbox { get; } = outbox;

        public string ConnectionId => Outbox.ConnectionId;

        public string UserId { get; } = userId;

        public Guid SessionId { get; } = sessionId;

        internal Lock Gate { get; } = new();

        internal List<ClientEvent> Buffer { get; } = [];

        internal bool Live { get; set; }

        internal long LastSeq { get; set; } = afterSeq;
    }
}
