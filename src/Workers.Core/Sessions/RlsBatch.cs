using Npgsql;

namespace Workers.Core.Sessions;

/// <summary>
/// Statements of one <see cref="RlsScope"/> sent in one round trip. When the scope's settings ride in front of them,
/// this batch hides that: the reader starts at the first added statement's result.
/// </summary>
public sealed class RlsBatch : IAsyncDisposable
{
    private readonly NpgsqlBatch _batch;
    private readonly bool _carriesContext;
    private readonly Action? _onSent;

    internal RlsBatch(NpgsqlBatch batch, bool carriesContext, Action? onSent)
    {
        _batch = batch;
        _carriesContext = carriesContext;
        _onSent = onSent;
    }

    /// <summary>Adds a statement with positional parameters (<c>$1</c>, <c>$2</c>, …; null is SQL NULL). Keep the
    /// returned statement to read its <c>RecordsAffected</c> after the batch ran.</summary>
    public NpgsqlBatchCommand Add(string sql, params object?[] parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var command = new NpgsqlBatchCommand(sql);
        foreach (var value in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value ?? DBNull.Value });
        }

        _batch.BatchCommands.Add(command);
        return command;
    }

    /// <summary>Runs the batch; the reader is positioned on the first added statement's result set.</summary>
    public async Task<NpgsqlDataReader> ExecuteReaderAsync(CancellationToken cancellationToken = default)
    {
        var reader = await _batch.ExecuteReaderAsync(cancellationToken);
        _onSent?.Invoke();
        if (_carriesContext)
        {
            await reader.NextResultAsync(cancellationToken);
        }

        return reader;
    }

    public async Task ExecuteNonQueryAsync(CancellationToken cancellationToken = default)
    {
        await _batch.ExecuteNonQueryAsync(cancellationToken);
        _onSent?.Invoke();
    }

    public ValueTask DisposeAsync() => _batch.DisposeAsync();
}
