using System.ComponentModel.DataAnnotations;

namespace Workers.Worker.Model;

public sealed class OfflineModelOptions : ContextLimits
{
    public OfflineModelOptions()
    {
        ContextWindow = 8192;
        OutputReserve = 1024;
    }

    /// <summary>Tokens per reply at least (filler follows a short answer).</summary>
    [Range(1, 100_000)]
    public int Tokens { get; set; } = 24;

    /// <summary>Pause before each token; 0 for benchmarks.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:01:00")]
    public TimeSpan TokenDelay { get; set; } = TimeSpan.FromMilliseconds(20);

    /// <summary>Whether <c>#think=MS</c> and <c>#fail</c> in a message act (stand-ins for a slow or broken provider in demos
    /// and tests). Unset: only in Development, so nobody can make a production worker stall or fail on purpose.</summary>
    public bool? Directives { get; set; }
}
