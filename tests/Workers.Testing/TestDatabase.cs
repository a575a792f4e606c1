using Npgsql;

namespace Workers.Testing;

/// <summary>A migrated database of its own for one test class or one benchmark run; dropped when disposed.</summary>
public sealed class TestDatabase(Services services, string name, NpgsqlConnectionStringBuilder admin, NpgsqlConnectionStringBuilder app,
    NpgsqlConnectionStringBuilder worker, NpgsqlConnectionStringBuilder notifier, NpgsqlConnectionStringBuilder @operator,
    NpgsqlConnectionStringBuilder leases, int commandTimeout) : IAsyncDisposable
{
    public string Name => name;

    /// <summary>Superuser connection, for arranging data, reading counters and breaking policies on purpose.</summary>
    public NpgsqlConnectionStringBuilder Admin => admin;

    /// <summary><c>workers_app</c>: bound by the same policies as the hosts' roles; the policy tests log in as it.</summary>
    public NpgsqlConnectionStringBuilder App => app;

    /// <summary><c>workers_worker</c>, what worker processes log in as.</summary>
    public NpgsqlConnectionStringBuilder Worker => worker;

    /// <summary><c>workers_notifier</c>, what notifier processes log in as.</summary>
    public NpgsqlConnectionStringBuilder Notifier => notifier;

    /// <summary><c>workers_operator</c>, what the notifier's admin API logs in as.</summary>
    public NpgsqlConnectionStringBuilder Operator => @operator;

    /// <summary><c>workers_worker</c> straight to the primary, never through PgBouncer: a worker's partition leases.</summary>
    public NpgsqlConnectionStringBuilder Leases => leases;

    public NpgsqlDataSource AppDataSource() => NpgsqlDataSource.Create(App);

    public async Task<NpgsqlConnection> OpenAdminAsync()
    {
        var connection = new NpgsqlConnection(Admin.ConnectionString);
        await connection.OpenAsync();
        return connection;
    }

    public async Task<T> ScalarAsync<T>(string sql)
    {
        await using var connection = await OpenAdminAsync();
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = commandTimeout };
        return (T)(await command.ExecuteScalarAsync())!;
    }

    public async Task ExecuteAsync(string sql)
    {
        await using var connection = await OpenAdminAsync();
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = commandTimeout };
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>
    /// A session of <paramref name="userId"/> with <paramref name="turns"/> completed turns of
    /// <paramref name="replyChars"/> characters each (3 events per turn, as the worker numbers them), written as the
    /// superuser in one statement: a long history to replay without running the turns.
    /// </summary>
    public async Task<Guid> SeedLongSessionAsync(string userId, int turns, int replyChars)
    {
        var sessionId = Guid.NewGuid();
        await using var connection = await OpenAdminAsync();
        await using var command = new NpgsqlCommand("""
            INSERT INTO workers.sessions (id, owner_id, title, turn_seq, event_seq) VALUES (@session, @user, 'long history', @turns, 3 * @turns);
            INSERT INTO workers.turns (session_id, turn_no, owner_id, request_id, user_text, reply_text, status, first_seq, last_seq, started_at)
            SELECT @session, n, @user, gen_random_uuid(), 'question ' || n, left(repeat('all work and no play ', @chars / 20 + 1), @chars),
                   'complete', 3 * n - 2, 3 * n, now()
            FROM generate_series(1, @turns) AS n;
            """, connection) { CommandTimeout = commandTimeout };
        command.Parameters.AddWithValue("session", sessionId);
        command.Parameters.AddWithValue("user", userId);
        command.Parameters.AddWithValue("turns", (long)turns);
        command.Parameters.AddWithValue("chars", replyChars);
        await command.ExecuteNonQueryAsync();
        return sessionId;
    }

    public async ValueTask DisposeAsync()
    {
        // Idle connections of this process to the database would only break once it is dropped.
        await using (var pooled = new NpgsqlConnection(App.ConnectionString))
        {
            NpgsqlConnection.ClearPool(pooled);
        }

        await services.DropDatabaseAsync(name);
    }
}
