using Microsoft.EntityFrameworkCore;
using Npgsql;
using Workers.Contracts;

namespace Workers.Core.Sessions;

/// <summary>The one place that opens a transaction on user data and sets the caller's context in it.</summary>
public sealed class SessionStore(NpgsqlDataSource dataSource)
{
    /// <summary>Drops the pool's idle connections after a failover broke one: they lead to the old primary (or its
    /// node's PgBouncer) or to a node that is a standby now; new ones find the primary.</summary>
    public void ForgetConnections() => dataSource.Clear();

    private static readonly DbContextOptions<WorkersDb> DbOptions = new DbContextOptionsBuilder<WorkersDb>()
        .UseNpgsql()
        .Options;

    /// <summary>Opens a transaction as <paramref name="userId"/>, scoped to <paramref name="sessionId"/> when given.</summary>
    /// <param name="userId">The caller: only this user's rows are visible and writable.</param>
    /// <param name="sessionId">The session, for session-scoped tables; null for the user's session list.</param>
    /// <param name="cancellationToken">Cancels opening the transaction.</param>
    public async Task<RlsScope> BeginAsync(string userId, Guid? sessionId, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(userId) || userId.Length > ChatLimits.MaxUserIdLength)
        {
            throw new ChatErrorException(ErrorCodes.InvalidRequest, "userId must be 1 to 128 characters");
        }

        var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            var transaction = await connection.BeginTransactionAsync(cancellationToken);
            return new RlsScope(connection, transaction, CreateDb, userId, sessionId);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private static WorkersDb CreateDb(NpgsqlConnection connection, NpgsqlTransaction transaction, string userId, Guid? sessionId)
    {
        var db = new WorkersDb(DbOptions) { UserId = userId, SessionId = sessionId };
        db.Database.SetDbConnection(connection);
        db.Database.UseTransaction(transaction);
        return db;
    }
}
