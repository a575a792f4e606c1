using Npgsql;

namespace Workers.Core.Sessions;

/// <summary>
/// One transaction on behalf of one user (and, for session-scoped tables, one session). The transaction-local
/// settings the row-level security policies read go out before anything else reaches the database: with the scope's
/// first batch when that comes first (one round trip for BEGIN, the settings and the statements), or on their own
/// before EF Core or a command is first used. Disposing without <see cref="CommitAsync"/> rolls back.
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
    private bool _contextSent;

    internal RlsScope(NpgsqlConnection connection, NpgsqlTransaction transaction,
        Func<NpgsqlConnection, NpgsqlTransaction, string, Guid?, WorkersDb> createDb, string userId, Guid? sessionId)
    {
        _connection = connection;
        _transaction = transaction;
        _createDb = createDb;
        UserId = userId;
        SessionId = sessionId;
    }

    public string UserId { get; }

    public Guid? SessionId { get; }

    /// <summary>EF Core on this scope's transaction, created on first use (the turn path never needs one).</summary>
    public async ValueTask<WorkersDb> DbAsync(CancellationToken cancellationToken = default)
    {
        await SendContextAsync(cancellationToken);
        return _db ??= _createDb(_connection, _transaction, UserId, SessionId);
    }

    /// <summary>A raw command inside this scope's transaction, for statements EF Core does not express well.</summary>
    public async ValueTask<NpgsqlCommand> CommandAsync(string sql, CancellationToken cancellationToken = default)
    {
        await SendContextAsync(cancellationToken);
        return new NpgsqlCommand(sql, _connection, _transaction);
    }

    /// <summary>Several statements in one round trip. Add them with <see cref="RlsBatch.Add"/>; the reader and the
    /// statements' <c>RecordsAffected</c> are the caller's statements only.</summary>
    public RlsBatch Batch()
    {
        var batch = new NpgsqlBatch(_connection, _transaction);
        if (_contextSent)
        {
            return new RlsBatch(batch, carriesContext: false, onSent: null);
        }

        batch.BatchCommands.Add(SetContextCommand());
        return new RlsBatch(batch, carriesContext: true, onSent: () => _contextSent = true);
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

    private async ValueTask SendContextAsync(CancellationToken cancellationToken)
    {
        if (_contextSent)
        {
            return;
        }

        // Npgsql sends BEGIN with this command, so it costs one round trip.
        await using var batch = new NpgsqlBatch(_connection, _transaction) { BatchCommands = { SetContextCommand() } };
        await batch.ExecuteNonQueryAsync(cancellationToken);
        _contextSent = true;
    }

    private NpgsqlBatchCommand SetContextCommand() => new(SetContextSql)
    {
        Parameters = { new NpgsqlParameter { Value = UserId }, new NpgsqlParameter { Value = SessionId?.ToString("D") ?? "" } },
    };
}
