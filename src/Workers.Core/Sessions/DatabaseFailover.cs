using Microsoft.EntityFrameworkCore;
using Npgsql;

namespace Workers.Core.Sessions;

/// <summary>
/// Errors a PostgreSQL failover causes: the connection to the old primary broken, the server shutting down or not yet
/// accepting connections, or a write landing on a node that is a standby now. Retried while the cluster elects a new
/// primary (seconds), where other errors fail the turn.
/// </summary>
public static class DatabaseFailover
{
    public static bool Is(Exception e) => e switch
    {
        // ReadOnlySqlTransaction: a write on a node that was primary when the pooled connection was opened and is a
        // standby now (the pool's connections must go, or every retry lands there again).
        PostgresException p => p.SqlState is PostgresErrorCodes.ReadOnlySqlTransaction or PostgresErrorCodes.AdminShutdown
            or PostgresErrorCodes.CrashShutdown or PostgresErrorCodes.CannotConnectNow || p.SqlState.StartsWith("08", StringComparison.Ordinal),
        NpgsqlException => true, // no server answer at all: the connection broke or could not be opened
        // EF Core wraps what broke it: SaveChanges in DbUpdateException, and its execution strategy (which does not
        // retry here: a retry must redo the whole transaction, as the callers do) in InvalidOperationException.
        DbUpdateException or InvalidOperationException when e.InnerException is { } inner => Is(inner),
        TimeoutException => true,
        _ => false,
    };

    /// <summary>For logs: the exception's type and SQLSTATE, never its message (a server message can quote row data).</summary>
    public static string Describe(Exception e) => e switch
    {
        PostgresException p => $"{e.GetType().Name} {p.SqlState}",
        DbUpdateException or InvalidOperationException when e.InnerException is { } inner => Describe(inner),
        _ => e.GetType().Name,
    };
}
