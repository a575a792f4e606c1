using System.Globalization;
using System.Text;

namespace Workers.Contracts;

/// <summary>
/// Maps a session to its partition queue: <c>fnv1a32(utf8(lower-case hyphenated session id)) mod P</c>.
/// Publishers compute it, so a session's requests always land in one queue, in publish order.
/// </summary>
public static class Partitioning
{
    /// <summary>The direct exchange requests are published to.</summary>
    public const string RequestsExchange = "workers.chat-requests";

    /// <summary>The fanout exchange for <see cref="CancelTurn"/>.</summary>
    public const string ControlExchange = "workers.chat-control";

    /// <summary>The fanout exchange for reply events: whoever binds it gets every event.</summary>
    public const string EventsExchange = "workers.chat-events";

    /// <summary>
    /// A direct exchange bound to <see cref="EventsExchange"/>, for consumers that want only some sessions (each notifier
    /// binds the sessions its connections watch). Events keep the routing key they were published with:
    /// <see cref="EventRoutingKey"/>.
    /// </summary>
    public const string SessionEventsExchange = "workers.chat-events.by-session";

    /// <summary>The routing key of the events every notifier needs whatever it watches: a turn's start and end (each
    /// notifier counts its users' running turns from them).</summary>
    public const string TurnLifecycleKey = "turns";

    /// <summary>The routing key of <see cref="TurnProgress"/>, the answers to <see cref="TurnProgressRequested"/>. Each
    /// notifier reads them from a queue of their own, so an answer never waits behind a backlog of reply events (a
    /// resuming client's replay waits for it).</summary>
    public const string TurnProgressKey = "progress";

    /// <summary>How a reply event is routed: the stream of a turn (deltas, tool calls) by its session id (lower-case,
    /// hyphenated), the start and end of a turn by <see cref="TurnLifecycleKey"/>.</summary>
    public static string EventRoutingKey(IReplyEvent replyEvent)
    {
        ArgumentNullException.ThrowIfNull(replyEvent);
        return replyEvent is ReplyDelta or ToolInvoked ? replyEvent.SessionId.ToString("D") : TurnLifecycleKey;
    }

    /// <summary>FNV-1a, 32 bit, over the UTF-8 bytes of <paramref name="text"/>.</summary>
    public static uint Fnv1a32(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var hash = 2166136261u;
        foreach (var b in Encoding.UTF8.GetBytes(text))
        {
            hash ^= b;
            hash *= 16777619u;
        }

        return hash;
    }

    /// <summary>The partition number of a session for <paramref name="partitions"/> partitions.</summary>
    public static int PartitionOf(Guid sessionId, int partitions)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(partitions, 1);
        return (int)(Fnv1a32(sessionId.ToString("D")) % (uint)partitions);
    }

    /// <summary>The routing key of a partition: two digits (<c>07</c>), three from 100 partitions on.</summary>
    public static string RoutingKey(int partition) => partition.ToString("00", CultureInfo.InvariantCulture);

    /// <summary>The routing key of a session's partition.</summary>
    public static string RoutingKey(Guid sessionId, int partitions) => RoutingKey(PartitionOf(sessionId, partitions));

    /// <summary>The queue of a partition, <c>workers.chat-requests.pNN</c>.</summary>
    public static string QueueName(int partition) => $"{RequestsExchange}.p{RoutingKey(partition)}";
}
