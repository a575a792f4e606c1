using Npgsql;

namespace Workers.Core.Sessions;

/// <summary>
/// Unique and foreign-key checks bypass row-level security, so their errors could tell a caller that another
/// user's row exists. Each is reported exactly like a missing session.
/// </summary>
public static class OwnershipConflicts
{
    public static bool Reveal(Exception exception) => exception is PostgresException
    {
        SqlState: PostgresErrorCodes.UniqueViolation
            or PostgresErrorCodes.ForeignKeyViolation
            or PostgresErrorCodes.InsufficientPrivilege
    } || exception.InnerException is { } inner && Reveal(inner);
}
