using Npgsql;
using Workers.Core.Hosting;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Foundation;

/// <summary>
/// Each host logs in as a role that row-level security binds and that holds only what the host uses; a host refuses
/// to run with any other login, or with a secret this repository publishes; retention cannot be steered by a login.
/// </summary>
[Collection("worker pools")]
public sealed class Logins_and_secrets(ServicesFixture services)
{
    [Theory]
    [InlineData("SUPERUSER", "a superuser")]
    [InlineData("BYPASSRLS", "a role with BYPASSRLS")]
    [InlineData("member of owner", "a member of the schema owner")]
    [InlineData("owns a table", "the owner of tables in schema workers")]
    public async Task A_host_refuses_to_start_with_a_login_that_row_level_security_does_not_bind(string kind, string expected)
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        var role = $"t_login_{Guid.NewGuid():N}"[..20];
        var password = Guid.NewGuid().ToString("N");
        await pool.Db.ExecuteAsync(kind switch
        {
            "SUPERUSER" => $"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'",
            "BYPASSRLS" => $"CREATE ROLE {role} LOGIN BYPASSRLS PASSWORD '{password}'; GRANT workers_worker TO {role}",
            "member of owner" => $"CREATE ROLE {role} LOGIN PASSWORD '{password}'; GRANT workers_migrator TO {role}",
            _ => $"CREATE ROLE {role} LOGIN PASSWORD '{password}'; CREATE TABLE workers.{role} (id int); ALTER TABLE workers.{role} OWNER TO {role}",
        });
        try
        {
            var login = new NpgsqlConnectionStringBuilder(pool.Db.Worker.ConnectionString) { Username = role, Password = password };
            var settings = new Dictionary<string, string>(pool.Settings)
            {
                ["ConnectionStrings__Postgres"] = login.ConnectionString, ["Workers__WorkerId"] = "privileged",
            };
            await using var worker = HostProcess.StartHost("Workers.Worker", "privileged", settings);
            Assert.Equal(2, await worker.WaitForExitAsync(TimeSpan.FromSeconds(30)));
            var line = Assert.Single(worker.Log, l => l.StartsWith("configuration error:", StringComparison.Ordinal));
            Assert.Contains($"logs in as '{role}', {expected}", line, StringComparison.Ordinal);
            Assert.Equal(0L, await pool.Db.ScalarAsync<long>("SELECT count(*) FROM workers.worker_members"));
        }
        finally
        {
            await pool.Db.ExecuteAsync($"DROP OWNED BY {role}; DROP ROLE {role}");
        }
    }

    [Fact]
    public async Task A_notifier_refuses_to_start_with_an_operator_login_that_row_level_security_does_not_bind()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        var superuser = pool.Db.Admin.ConnectionString;
        var notifier = HostProcess.StartHost("Workers.Notifier", "operator-superuser", new Dictionary<string, string>(pool.Settings)
        {
            ["ConnectionStrings__Postgres"] = pool.Db.Notifier.ConnectionString, ["ConnectionStrings__PostgresOperator"] = superuser,
            ["Operator__ManagementUsername"] = services.Services.Monitor.Username, ["Operator__ManagementPassword"] = services.Services.Monitor.Password,
            ["ASPNETCORE_ENVIRONMENT"] = "Development", ["Auth__SigningKey"] = WorkersSystem.SigningKey, ["Urls"] = "http://127.0.0.1:0",
        });
        await using var _ = notifier;
        Assert.Equal(2, await notifier.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        var line = Assert.Single(notifier.Log, l => l.StartsWith("configuration error:", StringComparison.Ordinal));
        Assert.Contains("ConnectionStrings:PostgresOperator logs in as", line, StringComparison.Ordinal);
        Assert.Contains("a superuser", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_host_outside_Development_refuses_a_password_or_key_this_repository_publishes()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        var published = new NpgsqlConnectionStringBuilder(pool.Db.Worker.ConnectionString) { Password = "workers_worker" };
        var workerSettings = new Dictionary<string, string>(pool.Settings)
        {
            ["ConnectionStrings__Postgres"] = published.ConnectionString, ["Workers__WorkerId"] = "published",
        };
        await using var worker = HostProcess.StartHost("Workers.Worker", "published", workerSettings);
        Assert.Equal(2, await worker.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Single(worker.Log, l => l.StartsWith("configuration error: ConnectionStrings:Postgres holds a development secret", StringComparison.Ordinal));

        var notifierSettings = new Dictionary<string, string>(pool.Settings)
        {
            ["ConnectionStrings__Postgres"] = pool.Db.Notifier.ConnectionString, ["ASPNETCORE_ENVIRONMENT"] = "Production",
            ["Urls"] = "http://127.0.0.1:0", ["Auth__SigningKey"] = DevelopmentSecrets.SigningKey,
        };
        await using var notifier = HostProcess.StartHost("Workers.Notifier", "published-key", notifierSettings);
        Assert.Equal(2, await notifier.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Single(notifier.Log, l => l.StartsWith("configuration error: Auth:SigningKey holds a development secret", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Retention_cannot_be_steered_by_a_login_role()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        await using var worker = new NpgsqlConnection(pool.Db.Worker.ConnectionString);
        await worker.OpenAsync();
        // The old form took the interval from its caller: gone.
        await AssertRefusedAsync(worker, "SELECT workers.delete_idle_sessions('1 minute'::interval)", PostgresErrorCodes.UndefinedFunction);
        // The TTL is the migrator's to write.
        await AssertRefusedAsync(worker, "UPDATE workers.settings SET value = '1 minute'", PostgresErrorCodes.InsufficientPrivilege);
        await AssertRefusedAsync(worker, "INSERT INTO workers.settings VALUES ('session_idle_ttl_2', '1 minute')", PostgresErrorCodes.InsufficientPrivilege);
        await using var notifier = new NpgsqlConnection(pool.Db.Notifier.ConnectionString);
        await notifier.OpenAsync();
        await AssertRefusedAsync(notifier, "SELECT workers.delete_idle_sessions()", PostgresErrorCodes.InsufficientPrivilege);
        // And the notifier holds nothing of the pool's: leases and members are the workers'.
        await AssertRefusedAsync(notifier, "SELECT count(*) FROM workers.partition_leases", PostgresErrorCodes.InsufficientPrivilege);
        await AssertRefusedAsync(notifier, "DELETE FROM workers.worker_members", PostgresErrorCodes.InsufficientPrivilege);
        await AssertRefusedAsync(notifier, "SELECT count(*) FROM workers.inbox", PostgresErrorCodes.InsufficientPrivilege);

        // What the worker's sweep deletes is decided by the migrator's setting alone.
        await pool.Db.ExecuteAsync(
            "INSERT INTO workers.sessions (id, owner_id, last_active_at) VALUES (gen_random_uuid(), 'alice', now() - interval '2 days')");
        await using (var sweep = new NpgsqlCommand("SELECT workers.delete_idle_sessions()", worker))
        {
            Assert.Equal(0, (int)(await sweep.ExecuteScalarAsync())!);
        }

        await pool.Db.ExecuteAsync("UPDATE workers.settings SET value = '1 day' WHERE key = 'session_idle_ttl'");
        await using (var sweep = new NpgsqlCommand("SELECT workers.delete_idle_sessions()", worker))
        {
            Assert.Equal(1, (int)(await sweep.ExecuteScalarAsync())!);
        }
    }

    [Fact]
    public async Task Every_migration_run_takes_back_privileges_given_to_a_login_role_by_hand()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        await pool.Db.ExecuteAsync("ALTER ROLE workers_notifier BYPASSRLS; GRANT workers_migrator TO workers_notifier");
        Workers.Migrator.MigrationRunner.Apply(pool.Db.Admin, [], Workers.Migrator.MigrationRunner.DefaultDirectory,
            Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        Assert.Equal("false false", await pool.Db.ScalarAsync<string>(
            "SELECT rolbypassrls::text || ' ' || pg_has_role('workers_notifier', 'workers_migrator', 'MEMBER')::text " +
            "FROM pg_roles WHERE rolname = 'workers_notifier'"));
    }

    private static async Task AssertRefusedAsync(NpgsqlConnection connection, string sql, string sqlState)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        var error = await Assert.ThrowsAsync<PostgresException>(() => command.ExecuteNonQueryAsync());
        Assert.Equal(sqlState, error.SqlState);
    }
}
