using System.ComponentModel.DataAnnotations;

namespace Workers.Worker.Retention;

/// <summary>Section <c>Sessions</c>. How long a session may stay idle (<c>Sessions:IdleTtl</c>) is the migrator's
/// setting: no login role chooses it.</summary>
public sealed class RetentionOptions
{
    public const string SectionName = "Sessions";

    /// <summary>How often the sweep runs.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromHours(1);
}
