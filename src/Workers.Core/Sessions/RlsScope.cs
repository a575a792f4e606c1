using Npgsql;

namespace Workers.Core.Sessions;

/// <summary>
/// One transaction on behalf of one user (and, for session-scoped tables, one session). Its first command sets
/// the transaction-local settings the row-level security policies read; nothing else reaches a user table.
/// Disposing without <see cref="CommitAsync"/> rolls back.
/// </summary>
public sealed class RlsScope : IAsyncDisposable
{
    private readonly NpgsqlConnection _connection;
    private readonly NpgsqlTransaction _transaction;

    internal RlsScope(NpgsqlConnection connection, NpgsqlTransaction transaction, WorkersDb db, string userId, Guid? sessionId)
    {
        _connection = connection;
        _transaction = transaction;
        Db = db;
        UserId = userId;
        SessionId = sessionId;
    }

    public WorkersDb Db { get; }

    public string UserId { get; }

    public Guid? SessionId { get; }

    /// <summary>A raw command inside this scope's transaction, for statements EF Core does not express well.</summary>
    public NpgsqlCommand Command(string sql) => new(sql, _connection, _transaction);

    /// <summary>Several statements in one round trip, each with its own positional parameters.</summary>
    public NpgsqlBatch Batch(params (string Sql, object[] Parameters)[] statements)
    {
        ArgumentNullException.ThrowIfNull(statements);
        var batch = new NpgsqlBatch(_connection, _transaction);
        foreach (var (sql, parameters) in statements)
        {
            var command = new NpgsqlBatchCommand(sql);
            foreach (var value in parameters)
            {
                command.Parameters.Add(new NpgsqlParameter { Value = value });
            }

            batch.BatchCommands.Add(command);
        }

        return batch;
    }

    public Task CommitAsync(CancellationToken cancellationToken) => _transaction.CommitAsync(cancellationToken);

    public async ValueTask DisposeAsync()
    {
        await Db.DisposeAsync();
        await _transaction.DisposeAsync();
        await _connection.DisposeAsync();
    }
}
