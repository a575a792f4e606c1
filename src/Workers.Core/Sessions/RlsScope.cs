using Npgsql;

namespace Workers.Core.Sessions;

/// <summary>
/// One transaction on behalf of one user (and, for session-scoped tables, one session). Its first command sets
/// the transaction-local settings the row-level security policies read; nothing reaches a user table before that.
/// Disposing without <see cref="CommitAsync"/> rolls back.
/// </summary>
public sealed class RlsScope : IAsyncDisposable
{
    // Parameterised and transaction-local: never a session-level SET, which would outlive this transaction on a
    // pooled connection.
    private const string SetContextSql = "SELECT set_config('app.user_id', $1, true), set_config('app.session_id', $2, true)";

    private readonly NpgsqlConnection _connection;
    private readonly NpgsqlTransaction _transaction;
    private readonly Func<NpgsqlConnection, NpgsqlTransaction, string, Guid?, WorkersDb> _createDb;
    private WorkersDb? _db;
    private bool _contextSet;

    internal RlsScope(NpgsqlConnection connection, NpgsqlTransaction transaction,
        Func<NpgsqlConnection, NpgsqlTransaction, string, Guid?, WorkersDb> createDb, string userId, Guid? sessionId)
    {
        _connection = connection;
        _transaction = transaction;
        _createDb = createDb;
        UserId = userId;
        SessionId = sessionId;
    }

    /// <summary>EF Core on this scope's transaction, created on first use (the turn path never needs one).</summary>
    public WorkersDb Db => _contextSet ? _db ??= _createDb(_connection, _transaction, UserId, SessionId) : throw ContextNotSet();

    public string UserId { get; }

    public Guid? SessionId { get; }

    /// <summary>A raw command inside this scope's transaction, for statements EF Core does not express well.</summary>
    public NpgsqlCommand Command(string sql) =>
        _contextSet ? new(sql, _connection, _transaction) : throw ContextNotSet();

    /// <summary>Several statements in one round trip, each with its own positional parameters. In a scope begun with
    /// a deferred context, the settings go first in this same batch.</summary>
    public NpgsqlBatch Batch(params (string Sql, object[] Parameters)[] statements)
    {
        ArgumentNullException.ThrowIfNull(statements);
        var batch = new NpgsqlBatch(_connection, _transaction);
        if (!_contextSet)
        {
            batch.BatchCommands.Add(SetContextCommand());
            _contextSet = true;
        }

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
        if (_db is not null)
        {
            await _db.DisposeAsync();
        }

        await _transaction.DisposeAsync();
        await _connection.DisposeAsync();
    }

    internal async Task SetContextAsync(CancellationToken cancellationToken)
    {
        // Npgsql sends BEGIN with this command, so it costs one round trip.
        await using var batch = new NpgsqlBatch(_connection, _transaction) { BatchCommands = { SetContextCommand() } };
        await batch.ExecuteNonQueryAsync(cancellationToken);
        _contextSet = true;
    }

    private NpgsqlBatchCommand SetContextCommand() => new(SetContextSql)
    {
        Parameters = { new NpgsqlParameter { Value = UserId }, new NpgsqlParameter { Value = SessionId?.ToString("D") ?? "" } },
    };

    private static InvalidOperationException ContextNotSet() =>
        new("the scope's context rides with its first batch; run Batch(...) before EF Core or raw commands");
}
