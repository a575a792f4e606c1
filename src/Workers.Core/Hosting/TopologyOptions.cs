using System.ComponentModel.DataAnnotations;

namespace Workers.Core.Hosting;

/// <summary>The request partitions every process must agree on; section <c>Workers</c>.</summary>
public sealed class TopologyOptions
{
    public const string SectionName = "Workers";

    /// <summary>Number of partition queues. Changing it moves sessions between queues: drain first.</summary>
    [Range(1, 999)]
    public int Partitions { get; set; } = 16;

    /// <summary><c>quorum</c> (default, replicated, survives a node loss) or <c>classic</c>.</summary>
    [RegularExpression("^(quorum|classic)$", ErrorMessage = "must be 'quorum' or 'classic'")]
    public string QueueType { get; set; } = "quorum";

    /// <summary>How long a refused or parked request's record stays in the error queue.</summary>
    [Range(typeof(TimeSpan), "00:01:00", "365.00:00:00")]
    public TimeSpan ErrorQueueTtl { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Records kept in the error queue at most; the oldest go first.</summary>
    [Range(1, 10_000_000)]
    public int ErrorQueueMaxLength { get; set; } = 10_000;
}
