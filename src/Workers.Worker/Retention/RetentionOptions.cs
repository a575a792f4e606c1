using System.ComponentModel.DataAnnotations;

namespace Workers.Worker.Retention;

/// <summary>Section <c>Sessions</c>.</summary>
public sealed class RetentionOptions
{
    public const string SectionName = "Sessions";

    /// <summary>A session idle longer than this is deleted with all its rows.</summary>
    [Range(typeof(TimeSpan), "00:01:00", "3650.00:00:00")]
    public TimeSpan IdleTtl { get; set; } = TimeSpan.FromDays(30);

    /// <summary>How often the sweep runs.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan SweepInterval { get; set; } = TimeSpan.FromHours(1);
}
