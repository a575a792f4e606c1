using Workers.Core.Sessions;

namespace Workers.Notifier.Sessions;

/// <summary>A session as the hub and REST show it; <see cref="SystemPrompt"/>, <see cref="Temperature"/> and
/// <see cref="Model"/> are null where the session uses the deployment's; <see cref="Tools"/> is null for the deployment's
/// default tool servers.</summary>
public sealed record SessionSummary(Guid Id, string Title, DateTimeOffset CreatedAt, DateTimeOffset LastActiveAt, long Turns,
    string? SystemPrompt, double? Temperature, string? Model = null, IReadOnlyList<string>? Tools = null)
{
    public static SessionSummary Of(Session s) =>
        new(s.Id, s.Title, s.CreatedAt, s.LastActiveAt, s.TurnSeq, s.SystemPrompt, s.Temperature is { } t ? Math.Round(t, 3) : null, s.Model,
            s.Tools);
}
