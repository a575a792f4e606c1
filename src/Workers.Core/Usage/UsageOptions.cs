using System.ComponentModel.DataAnnotations;

namespace Workers.Core.Usage;

/// <summary>Per-user budgets, the same for every user of the deployment; section <c>Usage</c>. Unset: no limit. The
/// worker enforces them across the whole pool (a reservation per turn, in PostgreSQL, before the model is called); the
/// notifier shows them with the user's totals. Days and months are UTC.</summary>
public sealed class UsageOptions
{
    public const string SectionName = "Usage";

    /// <summary>Prompt + completion tokens a user may spend per day.</summary>
    [Range(1, long.MaxValue)]
    public long? DailyTokens { get; set; }

    /// <summary>Prompt + completion tokens a user may spend per month.</summary>
    [Range(1, long.MaxValue)]
    public long? MonthlyTokens { get; set; }

    /// <summary>What a user's turns may cost per month, in US dollars (from the providers' configured prices).</summary>
    [Range(typeof(decimal), "0.000001", "1000000000")]
    public decimal? MonthlyCostUsd { get; set; }

    public bool Enabled => DailyTokens is not null || MonthlyTokens is not null || MonthlyCostUsd is not null;

    /// <summary>The monthly cost budget in micro-dollars (how costs are stored), or null.</summary>
    public long? MonthlyCostMicros => MonthlyCostUsd is { } usd ? (long)(usd * 1_000_000m) : null;
}
