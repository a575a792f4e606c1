using Workers.Core.Sessions;

namespace Workers.Notifier.Sessions;

public sealed record SessionSummary(Guid Id, string Title, DateTimeOffset CreatedAt, DateTimeOffset LastActiveAt, long Turns)
{
    public static SessionSummary Of(Session s) => new(s.Id, s.Title, s.CreatedAt, s.LastActiveAt, s.TurnSeq);
}
