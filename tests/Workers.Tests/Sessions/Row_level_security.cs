using Npgsql;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Sessions;

/// <summary>The database itself keeps users apart, whatever SQL the app role runs.</summary>
public sealed class Row_level_security(ServicesFixture services) : IAsyncLifetime
{
    private TestDatabase _db = null!;
    private Seed _seed = null!;

    public async ValueTask InitializeAsync()
    {
        _db = await services.CreateDatabaseAsync();
        _seed = await Seed.TwoUsersAsync(_db);
    }

    public ValueTask DisposeAsync() => _db.DisposeAsync();

    [Fact]
    public async Task Should_know_the_user_tables_from_the_catalog()
    {
        await using var admin = await _db.OpenAdminAsync();
        Assert.Equal(["inbox", "parked_requests", "session_memory", "session_notes", "sessions", "turns", "usage_reservations", "user_usage"],
            await UserTables.ListAsync(admin));
    }

    [Fact]
    public async Task Without_context_every_user_table_returns_no_rows_and_no_error()
    {
        await using var admin = await _db.OpenAdminAsync();
        await using var app = new NpgsqlConnection(_db.App.ConnectionString);
        await app.OpenAsync();
        foreach (var table in await UserTables.ListAsync(admin))
        {
            Assert.Equal(0L, await CountAsync(app, null, $"SELECT count(*) FROM workers.{table}"));
        }
    }

    [Fact]
    public async Task A_pooled_connection_does_not_carry_the_previous_users_context()
    {
        var oneConnection = new NpgsqlConnectionStringBuilder(_db.App.ConnectionString) { MaxPoolSize = 1, NoResetOnClose = true };
        await using var dataSource = NpgsqlDataSource.Create(oneConnection);
        await using (var first = await dataSource.OpenConnectionAsync())
        {
            Assert.Equal(2L, await CountAsync(first, (Seed.UserB, _seed.SessionB), "SELECT count(*) FROM workers.turns"));
        }

        // Same physical connection, no reset on close: only the transaction-local setting keeps B's context out.
        await using var second = await dataSource.OpenConnectionAsync();
        await using var setting = new NpgsqlCommand("SELECT coalesce(current_setting('app.user_id', true), '<null>')", second);
        Assert.Contains((string)(await setting.ExecuteScalarAsync())!, new[] { "", "<null>" });
        foreach (var table in new[] { "sessions", "turns", "inbox", "session_notes", "parked_requests", "session_memory", "user_usage", "usage_reservations" })
        {
            Assert.Equal(0L, await CountAsync(second, null, $"SELECT count(*) FROM workers.{table}"));
        }
    }

    [Fact]
    public async Task A_statement_prepared_in_one_users_transaction_sees_only_the_next_users_rows()
    {
        // The hosts prepare their statements (Max Auto Prepare, CoreRegistration): a plan cached on a connection must take
        // the user from each transaction's context, never keep the one it was first planned with.
        var preparing = new NpgsqlConnectionStringBuilder(_db.App.ConnectionString)
        {
            MaxPoolSize = 1, NoResetOnClose = true, MaxAutoPrepare = 8, AutoPrepareMinUsages = 1,
        };
        await using var dataSource = NpgsqlDataSource.Create(preparing);
        await using var connection = await dataSource.OpenConnectionAsync();
        const string Owners = "SELECT coalesce(string_agg(DISTINCT owner_id, ','), '') FROM workers.turns";
        for (var i = 0; i < 8; i++)
        {
            var (user, session) = i % 2 == 0 ? (Seed.UserA, _seed.SessionA) : (Seed.UserB, _seed.SessionB);
            await using var tx = await connection.BeginTransactionAsync();
            await SetContextAsync(connection, tx, (user, session));
            await using var command = new NpgsqlCommand(Owners, connection, tx);
            Assert.Equal(user, (string)(await command.ExecuteScalarAsync())!);
            await tx.CommitAsync();
        }

        await using var check = new NpgsqlCommand("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%string_agg(DISTINCT owner_id%' AND statement NOT LIKE '%pg_prepared%'", connection);
        Assert.Equal(1L, (long)(await check.ExecuteScalarAsync())!); // it really ran as one prepared statement
    }

    [Theory]
    [InlineData(Seed.UserA)]
    [InlineData(Seed.UserB)]
    public async Task A_user_sees_only_own_rows_in_every_user_table(string user)
    {
        Assert.Equal(0, await ForeignRowsVisibleAsync(_db, user, _seed.SessionOf(user)));
        await using var app = new NpgsqlConnection(_db.App.ConnectionString);
        await app.OpenAsync();
        Assert.Equal(1L, await CountAsync(app, (user, _seed.SessionOf(user)), "SELECT count(*) FROM workers.sessions"));
        Assert.Equal(2L, await CountAsync(app, (user, _seed.SessionOf(user)), "SELECT count(*) FROM workers.turns"));
    }

    [Fact]
    public async Task The_isolation_check_catches_a_policy_weakened_to_true()
    {
        // Prove the check can fail: the same query against a database whose policies let everything through.
        foreach (var (table, policy) in new[]
                 {
                     ("sessions", "sessions_of_user"), ("turns", "turns_of_session"), ("inbox", "inbox_of_session"),
                     ("session_notes", "notes_of_session"), ("parked_requests", "parked_of_session"),
                     ("session_memory", "memory_of_session"), ("user_usage", "usage_of_user"),
                     ("usage_reservations", "reservations_of_user"),
                 })
        {
            await _db.ExecuteAsync($"ALTER POLICY {policy} ON workers.{table} USING (true)");
        }

        Assert.True(await ForeignRowsVisibleAsync(_db, Seed.UserA, _seed.SessionA) >= 8);
    }

    [Fact]
    public async Task Writes_aimed_at_another_users_rows_change_nothing_or_are_refused()
    {
        await using var app = new NpgsqlConnection(_db.App.ConnectionString);
        await app.OpenAsync();
        var asA = (Seed.UserA, _seed.SessionA);
        Assert.Equal(0L, await ExecuteAsync(app, asA, $"UPDATE workers.sessions SET title = 'pwned' WHERE id = '{_seed.SessionB}'"));
        Assert.Equal(0L, await ExecuteAsync(app, asA, $"DELETE FROM workers.sessions WHERE id = '{_seed.SessionB}'"));
        Assert.Equal(2L, await ExecuteAsync(app, asA, "UPDATE workers.turns SET reply_text = reply_text"));
        Assert.Equal(0L, await ExecuteAsync(app, (Seed.UserA, _seed.SessionB), "DELETE FROM workers.turns"));
        Assert.Equal(0L, await ExecuteAsync(app, asA,
            $"INSERT INTO workers.sessions (id, owner_id) VALUES ('{_seed.SessionB}', 'alice') ON CONFLICT (id) DO NOTHING"));

        // Rows claiming another owner, or written into another user's session, are refused by WITH CHECK or the owner FK.
        var refused = new[]
        {
            $"INSERT INTO workers.sessions (id, owner_id) VALUES (gen_random_uuid(), 'bob')",
            $"UPDATE workers.sessions SET owner_id = 'bob' WHERE id = '{_seed.SessionA}'",
            $"INSERT INTO workers.turns (session_id, turn_no, owner_id, request_id, user_text, reply_text, status, first_seq, last_seq, started_at) VALUES ('{_seed.SessionA}', 9, 'bob', gen_random_uuid(), 'x', 'x', 'complete', 1, 1, now())",
            $"INSERT INTO workers.session_notes (session_id, key, owner_id, value) VALUES ('{_seed.SessionB}', 'k', 'alice', 'v')",
        };
        foreach (var sql in refused)
        {
            var error = await Assert.ThrowsAsync<PostgresException>(() => ExecuteAsync(app, asA, sql));
            Assert.Contains(error.SqlState, new[] { PostgresErrorCodes.InsufficientPrivilege, PostgresErrorCodes.ForeignKeyViolation });
        }

        // A's own session claimed into B's: the composite foreign key refuses a turn owned by A in B's session.
        var intoB = await Assert.ThrowsAsync<PostgresException>(() => ExecuteAsync(app, (Seed.UserA, _seed.SessionB),
            $"INSERT INTO workers.turns (session_id, turn_no, owner_id, request_id, user_text, reply_text, status, first_seq, last_seq, started_at) VALUES ('{_seed.SessionB}', 9, 'alice', gen_random_uuid(), 'x', 'x', 'complete', 1, 1, now())"));
        Assert.Equal(PostgresErrorCodes.ForeignKeyViolation, intoB.SqlState);

        Assert.Equal("bob chat", await _db.ScalarAsync<string>($"SELECT title FROM workers.sessions WHERE id = '{_seed.SessionB}'"));
        Assert.Equal(2L, await _db.ScalarAsync<long>($"SELECT count(*) FROM workers.turns WHERE session_id = '{_seed.SessionB}'"));
    }

    [Fact]
    public async Task The_app_role_cannot_bypass_security_and_every_user_table_is_forced()
    {
        await using var admin = await _db.OpenAdminAsync();
        foreach (var role in new[] { "workers_app", "workers_worker", "workers_notifier" })
        {
            Assert.Equal("false false", await ScalarAsync(admin,
                $"SELECT rolsuper::text || ' ' || rolbypassrls::text FROM pg_roles WHERE rolname = '{role}'"));
            Assert.Equal(0L, await ScalarAsync(admin,
                $"SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = '{role}'"));
            Assert.Equal(0L, await ScalarAsync(admin,
                $"SELECT count(*) FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner WHERE r.rolname = '{role}'"));
            foreach (var table in await UserTables.ListAsync(admin))
            {
                Assert.Equal("true true", await ScalarAsync(admin,
                    $"SELECT relrowsecurity::text || ' ' || relforcerowsecurity::text FROM pg_class WHERE oid = 'workers.{table}'::regclass"));
                Assert.True(await ScalarAsync(admin,
                    $"SELECT count(*) FROM pg_policies WHERE schemaname = 'workers' AND tablename = '{table}' AND '{role}' = ANY(roles)") is long n && n >= 1,
                    $"table {table} has no policy for {role}");
            }
        }
    }

    [Fact]
    public async Task Views_over_user_data_run_with_the_callers_policies()
    {
        await using var admin = await _db.OpenAdminAsync();
        Assert.Equal(0L, await ScalarAsync(admin,
            """
            SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'workers' AND c.relkind = 'v' AND NOT coalesce(c.reloptions @> ARRAY['security_invoker=true'], false)
            """));
        await using var app = new NpgsqlConnection(_db.App.ConnectionString);
        await app.OpenAsync();
        Assert.Equal(1L, await CountAsync(app, (Seed.UserA, _seed.SessionA), "SELECT count(*) FROM workers.session_summaries"));
        Assert.Equal(0L, await CountAsync(app, null, "SELECT count(*) FROM workers.session_summaries"));
    }

    /// <summary>Rows of other users or other sessions visible to <paramref name="user"/> in any user table.</summary>
    internal static async Task<int> ForeignRowsVisibleAsync(TestDatabase db, string user, Guid session)
    {
        await using var app = new NpgsqlConnection(db.App.ConnectionString);
        await app.OpenAsync();
        await using var admin = await db.OpenAdminAsync();
        var leaked = 0;
        foreach (var table in await UserTables.ListAsync(admin))
        {
            // A user's own sessions are all theirs to see; per-user tables (usage) have no session at all.
            var foreign = table switch
            {
                "sessions" => $"owner_id <> '{user}'",
                "user_usage" or "usage_reservations" => $"owner_id <> '{user}'",
                _ => $"owner_id <> '{user}' OR session_id <> '{session}'",
            };
            leaked += (int)await CountAsync(app, (user, session), $"SELECT count(*) FROM workers.{table} WHERE {foreign}");
        }

        return leaked;
    }

    private static async Task<object> ScalarAsync(NpgsqlConnection connection, string sql)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (await command.ExecuteScalarAsync())!;
    }

    internal static async Task<long> CountAsync(NpgsqlConnection connection, (string User, Guid Session)? context, string sql)
    {
        await using var tx = await connection.BeginTransactionAsync();
        await SetContextAsync(connection, tx, context);
        await using var command = new NpgsqlCommand(sql, connection, tx);
        var count = (long)(await command.ExecuteScalarAsync())!;
        await tx.CommitAsync();
        return count;
    }

    private static async Task<long> ExecuteAsync(NpgsqlConnection connection, (string User, Guid Session)? context, string sql)
    {
        await using var tx = await connection.BeginTransactionAsync();
        await SetContextAsync(connection, tx, context);
        await using var command = new NpgsqlCommand(sql, connection, tx);
        var affected = await command.ExecuteNonQueryAsync();
        await tx.CommitAsync();
        return affected;
    }

    private static async Task SetContextAsync(NpgsqlConnection connection, NpgsqlTransaction tx, (string User, Guid Session)? context)
    {
        if (context is not { } c)
        {
            return;
        }

        await using var set = new NpgsqlCommand("SELECT set_config('app.user_id', $1, true), set_config('app.session_id', $2, true)", connection, tx);
        set.Parameters.AddWithValue(c.User);
        set.Parameters.AddWithValue(c.Session.ToString());
        await set.ExecuteNonQueryAsync();
    }
}
