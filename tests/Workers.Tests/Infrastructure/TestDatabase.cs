using Npgsql;

namespace Workers.Tests.Infrastructure;

/// <summary>A migrated database of its own for one test class; dropped when disposed.</summary>
public sealed class TestDatabase(ServicesFixture services, string name, NpgsqlConnectionStringBuilder admin,
    NpgsqlConnectionStringBuilder app) : IAsyncDisposable
{
    public string Name => name;

    /// <summary>Superuser connection, for arranging data and breaking policies on purpose.</summary>
    public NpgsqlConnectionStringBuilder Admin => admin;

    /// <summary>The role the worker and notifier log in as.</summary>
    public NpgsqlConnectionStringBuilder App => app;

    public NpgsqlDataSource AppDataSource() => NpgsqlDataSource.Create(app);

    public async Task<NpgsqlConnection> OpenAdminAsync()
    {
        var connection = new NpgsqlConnection(admin.ConnectionString);
        await connection.OpenAsync();
        return connection;
    }

    public async Task<T> ScalarAsync<T>(string sql)
    {
        await using var connection = await OpenAdminAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    public async Task ExecuteAsync(string sql)
    {
        await using var connection = await OpenAdminAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await services.DropDatabaseAsync(name);
    }
}
