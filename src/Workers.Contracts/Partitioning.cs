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

    /// <summary>The fanout exchange for reply events.</summary>
    public const string EventsExchange = "workers.chat-events";

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
