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
}
