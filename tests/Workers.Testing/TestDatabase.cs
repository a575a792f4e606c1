using Npgsql;

namespace Workers.Testing;

/// <summary>A migrated database of its own for one test class or one benchmark run; dropped when disposed.</summary>
public sealed class TestDatabase(Services services, string name, NpgsqlConnectionStringBuilder admin, NpgsqlConnectionStringBuilder app,
    NpgsqlConnectionStringBuilder worker, NpgsqlConnectionStringBuilder notifier, int commandTimeout) : IAsyncDisposable
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
