namespace Workers.Core.Sessions;

public static class TurnStatus
{
    public const string Started = "started";
    public const string Complete = "complete";
    public const string Cancelled = "cancelled";
    public const string Failed = "failed";
}
