using Workers.Core.Usage;

namespace Workers.Notifier.Sessions;

/// <summary>What <c>GET /api/usage</c> answers: the user's totals today and this month (UTC), and the deployment's
/// budgets (null where there is none).</summary>
public sealed record UsageReport(UsageTotals Today, UsageTotals Month, UsageLimits Limits);

/// <summary>Turns and tokens over a period, and their cost in US dollars.</summary>
public sealed record UsageTotals(long Turns, long PromptTokens, long CompletionTokens, long CachedTokens, decimal CostUsd)
{
    public long Tokens => PromptTokens + CompletionTokens;
}

/// <summary>The budgets every user has (<c>Usage:*</c>); null: no limit.</summary>
public sealed record UsageLimits(long? DailyTokens, long? MonthlyTokens, decimal? MonthlyCostUsd)
{
    public static UsageLimits Of(UsageOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new UsageLimits(options.DailyTokens, options.MonthlyTokens, options.MonthlyCostUsd);
    }
}
