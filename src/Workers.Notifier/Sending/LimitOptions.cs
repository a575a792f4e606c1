using System.ComponentModel.DataAnnotations;

namespace Workers.Notifier.Sending;

/// <summary>What one user may send; section <c>Limits</c>. Defaults follow LibreChat's (40 per minute, 2 at once).</summary>
public sealed class LimitOptions
{
    public const string SectionName = "Limits";

    [Range(1, 100_000)]
    public int MessagesPerMinute { get; set; } = 40;

    /// <summary>Turns of one user sent or running at once, across sessions and notifier instances.</summary>
    [Range(1, 10_000)]
    public int ConcurrentTurns { get; set; } = 2;

    /// <summary>Largest hub message a connection may send; a bigger one closes the connection.</summary>
    [Range(1024, 16 * 1024 * 1024)]
    public int MaxHubMessageBytes { get; set; } = 64 * 1024;

    /// <summary>Events waiting for one connection, in bytes of their JSON. A client that falls this far behind (it stopped
    /// reading its socket) is disconnected, so it holds no more than this in the notifier and delays nobody; it resumes
    /// from its last seq when it reconnects. Centrifugo's default for the same bound is 1 MiB.</summary>
    [Range(16 * 1024, 256 * 1024 * 1024)]
    public int MaxQueuedBytesPerConnection { get; set; } = 1024 * 1024;

    /// <summary>Reply text one <c>Subscribe</c> replays at most: the newest completed turns that fit (always the newest
    /// one); older turns are paged with <c>GET /api/sessions/{id}/turns</c>. Bounds what one subscribe holds.</summary>
    [Range(1024, 64 * 1024 * 1024)]
    public int MaxReplayChars { get; set; } = 1024 * 1024;

    /// <summary>Longest wait for the broker to confirm a user's message; past it the call fails with <c>unavailable</c>
    /// (send again with the same request id) instead of waiting on a confirmation a broken channel lost.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:05:00")]
    public TimeSpan PublishTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Origins a browser may open the hub from; empty means the notifier's own origin only.</summary>
    public string[] AllowedOrigins { get; set; } = [];
}
