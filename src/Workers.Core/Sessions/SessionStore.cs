using Microsoft.EntityFrameworkCore;
using Npgsql;
using Workers.Contracts;

namespace Workers.Core.Sessions;

/// <summary>The one place that opens a transaction on user data and sets the caller's context in it.</summary>
public sealed class SessionStore(NpgsqlDataSource dataSource)
{
    private static readonly DbContextOptions<WorkersDb> DbOptions = new DbContextOptionsBuilder<WorkersDb>()
        .UseNpgsql()
        .Options;

    public NpgsqlDataSource DataSource => dataSource;

    /// <summary>Opens a transaction as <paramref name="userId"/>, scoped to <paramref name="sessionId"/> when given.</summary>
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
            // Parameterised and transaction-local: never a session-level SET, which would outlive this transaction
            // on a pooled connection. Npgsql sends BEGIN with this command, so it costs one round trip.
            await using (var setContext = new NpgsqlCommand(
                "SELECT set_config('app.user_id', $1, true), set_config('app.session_id', $2, true)", connection, transaction))
            {
                setContext.Parameters.Add(new NpgsqlParameter { Value = userId });
                setContext.Parameters.Add(new NpgsqlParameter { Value = sessionId?.ToString("D") ?? "" });
                await setContext.ExecuteNonQueryAsync(cancellationToken);
            }

            var db = new WorkersDb(DbOptions) { UserId = userId, SessionId = sessionId };
            db.Database.SetDbConnection(connection);
            await db.Database.UseTransactionAsync(transaction, cancellationToken);
            return new RlsScope(connection, transaction, db, userId, sessionId);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }
}
