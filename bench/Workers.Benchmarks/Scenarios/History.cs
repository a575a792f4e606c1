using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Workers.Benchmarks.Infrastructure;
using Workers.Core.Sessions;
using Workers.Notifier.Sessions;

namespace Workers.Benchmarks.Scenarios;

/// <summary>
/// Issue "session store": loading a 200-turn history among 1,000,000 turns under row-level security, through the real
/// <see cref="SessionLifecycle.HistoryAsync"/> and through raw Npgsql in the same scope; the plan PostgreSQL picks as the
/// app role; and what setting the caller's context per transaction costs in round trips and latency.
/// </summary>
internal static partial class History
{
    private const string TargetUser = "user-0";

    public static async Task<ScenarioResult> RunAsync(Services services, Options o)
    {
        var users = o.Int("users", o.Quick ? 1000 : 10_000);
        var perUser = o.Int("turns-per-user", 100);
        var targetTurns = o.Int("target-turns", 200);
        var iterations = o.Int("iterations", o.Quick ? 300 : 2000);
        var contextIterations = o.Int("context-iterations", o.Quick ? 1000 : 5000);
        var result = new ScenarioResult("history");
        var clock = Stopwatch.StartNew();
        Out.Line("history: fresh database");
        await using var db = await services.CreateDatabaseAsync();
        Out.Line($"history: seeding {Out.I(users)} users x {perUser} turns + 1 target session of {targetTurns} turns as the superuser");
        await SeedAsync(db, users, perUser, targetTurns);
        var total = await db.ScalarAsync<long>("SELECT count(*) FROM workers.turns");
        var size = await db.ScalarAsync<string>("SELECT pg_size_pretty(pg_total_relation_size('workers.turns'))");
        Out.Line($"history: {Out.I(total)} turns ({size} with indexes) seeded and VACUUM ANALYZEd in {clock.Elapsed.TotalSeconds:0.0} s");
        var target = await db.ScalarAsync<Guid>($"SELECT id FROM workers.sessions WHERE owner_id = '{TargetUser}'");

        await using var dataSource = NpgsqlDataSource.Create(db.App);
        var store = new SessionStore(dataSource);
        var lifecycle = new SessionLifecycle(store, NullLogger<SessionLifecycle>.Instance);
        using var npgsql = new NpgsqlActivityCounter();

        // The EF query's SQL as Npgsql sends it, for EXPLAIN.
        npgsql.KeepStatements = true;
        var check = await lifecycle.HistoryAsync(TargetUser, target, 0, targetTurns, CancellationToken.None);
        npgsql.KeepStatements = false;
        var efStatements = npgsql.TakeStatements();
        if (check.Count != targetTurns)
        {
            throw new InvalidOperationException($"history returned {check.Count} turns, expected {targetTurns}");
        }

        Out.Line($"history: warm-up, then {Out.I(iterations)} loads of the target's {targetTurns}-turn history each way");
        for (var i = 0; i < Math.Max(100, iterations / 10); i++)
        {
            await lifecycle.HistoryAsync(TargetUser, target, 0, targetTurns, CancellationToken.None);
            await RawHistoryAsync(store, target, targetTurns);
        }

        var ef = new List<double>(iterations);
        var raw = new List<double>(iterations);
        for (var block = 0; block < iterations; block += 100)
        {
            // Interleaved in blocks, so drift on a shared machine hits both the same.
            for (var i = 0; i < 100 && block + i < iterations; i++)
            {
                var t = Stopwatch.GetTimestamp();
                await lifecycle.HistoryAsync(TargetUser, target, 0, targetTurns, CancellationToken.None);
                ef.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            }

            for (var i = 0; i < 100 && block + i < iterations; i++)
            {
                var t = Stopwatch.GetTimestamp();
                await RawHistoryAsync(store, target, targetTurns);
                raw.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
            }
        }

        var efDist = new Distribution(ef);
        var rawDist = new Distribution(raw);
        Out.Line($"history: SessionLifecycle.HistoryAsync {efDist.Summary()}");
        Out.Line($"history: raw Npgsql in the RLS scope   {rawDist.Summary()}");
        var loads = result.Add(new Table($"Load a {targetTurns}-turn history among {Out.I(total)} turns ({size}), as workers_app under RLS",
            "path", "p50 ms", "p99 ms", "max ms", "mean ms", "n"));
        loads.Row("SessionLifecycle.HistoryAsync (EF Core, query filters + RLS)", Out.F(efDist.P50, "0.000"), Out.F(efDist.P99, "0.000"),
            Out.F(efDist.Max, "0.000"), Out.F(efDist.Mean, "0.000"), Out.I(efDist.Count));
        loads.Row("raw Npgsql, same two statements in SessionStore.BeginAsync", Out.F(rawDist.P50, "0.000"), Out.F(rawDist.P99, "0.000"),
            Out.F(rawDist.Max, "0.000"), Out.F(rawDist.Mean, "0.000"), Out.I(rawDist.Count));

        // The plan of the EF history query, run as the app role inside the RLS scope with the same parameter values.
        var turnsSql = efStatements.LastOrDefault(s => s.Contains("turns", StringComparison.OrdinalIgnoreCase)) ?? "";
        var plan = await ExplainAsync(store, target, targetTurns, StripKind(turnsSql));
        Out.Line($"history: plan of the EF history query as workers_app:\n{plan}");
        result.Notes.Add("EF Core's history statement, as Npgsql sent it (captured from the \"Npgsql\" ActivitySource):\n\n```sql\n" +
                         StripKind(turnsSql) + "\n```");
        result.Notes.Add("`EXPLAIN (ANALYZE, BUFFERS)` of that statement as `workers_app` inside `SessionStore.BeginAsync` " +
                         "(context set, same parameter values):\n\n```\n" + plan + "\n```");

        await ContextCostAsync(db, store, target, contextIterations, result);
        return result;
    }

    private static async Task SeedAsync(TestDatabase db, int users, int perUser, int targetTurns)
    {
        // user-0 owns the target session; its turns are interleaved with everyone else's (ORDER BY turn, user), so a
        // session's rows are spread over the heap as they would be after months of traffic, not packed together.
        await db.ExecuteAsync($"""
            INSERT INTO workers.sessions (id, owner_id, title, turn_seq, event_seq)
            SELECT md5('s' || u)::uuid, 'user-' || u, 'seeded', CASE WHEN u = 0 THEN {targetTurns} ELSE {perUser} END,
                   3 * CASE WHEN u = 0 THEN {targetTurns} ELSE {perUser} END
            FROM generate_series(0, {users}) u;
            INSERT INTO workers.turns (session_id, turn_no, owner_id, request_id, user_text, reply_text, status, prompt_tokens,
                completion_tokens, first_seq, last_seq, started_at, completed_at)
            SELECT md5('s' || u)::uuid, t, 'user-' || u, gen_random_uuid(), 'msg ' || t || ' of session ' || u,
                   'You said: "msg ' || t || ' of session ' || u || '". This is reply ' || t || ' in this session. and that is all the offline model has to say',
                   'complete', 20 + t, 24, 3 * t - 2, 3 * t, now(), now()
            FROM generate_series(0, {users}) u, generate_series(1, {Math.Max(perUser, targetTurns)}) t
            WHERE t <= CASE WHEN u = 0 THEN {targetTurns} ELSE {perUser} END
            ORDER BY t, u;
            """);
        await db.ExecuteAsync("VACUUM ANALYZE workers.sessions");
        await db.ExecuteAsync("VACUUM ANALYZE workers.turns");
    }

    /// <summary>What HistoryAsync does, as hand-written SQL in the same scope, materialised into the same entity.</summary>
    private static async Task<List<Turn>> RawHistoryAsync(SessionStore store, Guid session, int limit)
    {
        await using var scope = await store.BeginAsync(TargetUser, session, CancellationToken.None);
        await using (var exists = await scope.CommandAsync("SELECT EXISTS (SELECT 1 FROM workers.sessions WHERE id = $1)"))
        {
            exists.Parameters.Add(new NpgsqlParameter { Value = session });
            if (!(bool)(await exists.ExecuteScalarAsync())!)
            {
                throw ChatErrorException.SessionNotFound();
            }
        }

        await using var command = await scope.CommandAsync(
            """
            SELECT session_id, turn_no, owner_id, request_id, user_text, reply_text, status, error_code, prompt_tokens,
                   completion_tokens, first_seq, last_seq, started_at, completed_at
            FROM workers.turns WHERE session_id = $1 AND last_seq > $2 ORDER BY turn_no LIMIT $3
            """);
        command.Parameters.Add(new NpgsqlParameter { Value = session });
        command.Parameters.Add(new NpgsqlParameter { Value = 0L });
        command.Parameters.Add(new NpgsqlParameter { Value = limit });
        var turns = new List<Turn>(limit);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            turns.Add(new Turn
            {
                SessionId = reader.GetGuid(0),
                TurnNo = reader.GetInt64(1),
                OwnerId = reader.GetString(2),
                RequestId = reader.GetGuid(3),
                UserText = reader.GetString(4),
                ReplyText = reader.GetString(5),
                Status = reader.GetString(6),
                ErrorCode = reader.IsDBNull(7) ? null : reader.GetString(7),
                PromptTokens = reader.GetInt32(8),
                CompletionTokens = reader.GetInt32(9),
                FirstSeq = reader.GetInt64(10),
                LastSeq = reader.GetInt64(11),
                StartedAt = reader.GetFieldValue<DateTimeOffset>(12),
                CompletedAt = reader.GetFieldValue<DateTimeOffset>(13),
            });
        }

        return turns;
    }

    private static string StripKind(string statement) => statement.Contains(": ", StringComparison.Ordinal)
        ? statement[(statement.IndexOf(": ", StringComparison.Ordinal) + 2)..]
        : statement;

    /// <summary>EXPLAIN of <paramref name="sql"/> with its @parameters bound by name to the history call's values.</summary>
    private static async Task<string> ExplainAsync(SessionStore store, Guid session, int limit, string sql)
    {
        if (sql.Length == 0)
        {
            return "(EF statement not captured: the Npgsql activity had no statement tag)";
        }

        await using var scope = await store.BeginAsync(TargetUser, session, CancellationToken.None);
        await using var command = await scope.CommandAsync("EXPLAIN (ANALYZE, BUFFERS, VERBOSE) " + sql);
        foreach (var name in ParameterName().Matches(sql).Select(m => m.Value).Distinct())
        {
            var bare = name[1..];
            object value = bare.Contains("userid", StringComparison.OrdinalIgnoreCase) ? TargetUser
                : bare.Contains("session", StringComparison.OrdinalIgnoreCase) ? session
                : bare.Contains("seq", StringComparison.OrdinalIgnoreCase) ? 0L
                : limit;
            command.Parameters.AddWithValue(bare, value);
        }

        var plan = new StringBuilder();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            plan.AppendLine(reader.GetString(0));
        }

        return plan.ToString().TrimEnd();
    }

    [GeneratedRegex(@"@[A-Za-z_][A-Za-z0-9_]*")]
    private static partial Regex ParameterName();

    /// <summary>Round trips and latency of setting the caller's context per transaction.</summary>
    private static async Task ContextCostAsync(TestDatabase db, SessionStore store, Guid target, int iterations, ScenarioResult result)
    {
        // (a) Round trips: the same calls through a counting relay, and the Npgsql activities they raise.
        await using (var relay = new PgWireCounter(db.App.Host!, db.App.Port))
        {
            var relayed = new NpgsqlConnectionStringBuilder(db.App.ConnectionString)
            {
                Host = "127.0.0.1",
                Port = relay.Port,
                SslMode = SslMode.Disable,
                ApplicationName = "bench-relay",
            };
            await using var relaySource = NpgsqlDataSource.Create(relayed);
            var relayStore = new SessionStore(relaySource);
            var relayLifecycle = new SessionLifecycle(relayStore, NullLogger<SessionLifecycle>.Instance);
            using var npgsql = new NpgsqlActivityCounter();
            var variants = new (string Name, Func<Task> Call)[]
            {
                ("SessionStore.BeginAsync + SELECT 1 + commit", async () =>
                {
                    await using var scope = await relayStore.BeginAsync(TargetUser, target, CancellationToken.None);
                    await using var select = await scope.CommandAsync("SELECT 1");
                    await select.ExecuteScalarAsync();
                    await scope.CommitAsync(CancellationToken.None);
                }),
                ("plain: open + BEGIN + SELECT 1 + commit (no set_config)", () => PlainAsync(relaySource)),
                ("SessionLifecycle.HistoryAsync (200 turns; ends in rollback)", () =>
                    relayLifecycle.HistoryAsync(TargetUser, target, 0, 200, CancellationToken.None)),
            };
            var table = result.Add(new Table("Round trips per call (counted on the wire by a relay, and Npgsql activities in-process)",
                "call", "round trips", "Parse/Bind/Execute/Sync msgs", "simple Query msgs", "statements (P = Parse, Q = Query)", "Npgsql activities", "bytes to server"));
            foreach (var (name, call) in variants)
            {
                await call();
                const int n = 200;
                var before = relay.Read();
                var activitiesBefore = npgsql.Snapshot();
                var verbsBefore = relay.Verbs();
                for (var i = 0; i < n; i++)
                {
                    await call();
                }

                var d = relay.Read() - before;
                var activities = NpgsqlActivityCounter.Delta(npgsql.Snapshot(), activitiesBefore);
                var verbs = PgWireCounter.Delta(relay.Verbs(), verbsBefore);
                table.Row(name, Out.F(d.RoundTrips / (double)n), $"{Out.F(d.Parse / (double)n)}/{Out.F(d.Bind / (double)n)}/" +
                    $"{Out.F(d.Execute / (double)n)}/{Out.F(d.Sync / (double)n)}", Out.F(d.Query / (double)n),
                    string.Join(", ", verbs.Select(v => $"{v.Key} ×{Out.F(v.Value / (double)n)}")),
                    string.Join(", ", activities.Select(a => $"{a.Key} ×{Out.F(a.Value / (double)n)}")),
                    Out.F(d.BytesToServer / (double)n, "0"));
                Out.Line($"context: {name}: {d.RoundTrips / (double)n:0.##} round trips, {d.Sync / (double)n:0.##} Sync, " +
                         $"{d.Query / (double)n:0.##} Query; new connections {d.Connections}");
            }
        }

        // (b) Latency, straight to PostgreSQL, variants interleaved in blocks.
        await using var dataSource = NpgsqlDataSource.Create(db.App);
        var directStore = new SessionStore(dataSource);
        var latency = new (string Name, Func<Task> Call, List<double> Samples)[]
        {
            ("SessionStore.BeginAsync + SELECT 1 + commit", async () =>
            {
                await using var scope = await directStore.BeginAsync(TargetUser, target, CancellationToken.None);
                await using var select = await scope.CommandAsync("SELECT 1");
                await select.ExecuteScalarAsync();
                await scope.CommitAsync(CancellationToken.None);
            }, []),
            ("plain transaction + SELECT 1 + commit (no set_config)", () => PlainAsync(dataSource), []),
            ("set_config as its own command + SELECT 1 + commit, no EF DbContext", () => SeparateNoEfAsync(dataSource, target), []),
            ("set_config and SELECT 1 in one batch + commit (what merging would give)", () => MergedAsync(dataSource, target), []),
        };
        Out.Line($"context: latency, {Out.I(iterations)} iterations of each, interleaved in blocks of 250");
        foreach (var (_, call, _) in latency)
        {
            for (var i = 0; i < 200; i++)
            {
                await call();
            }
        }

        for (var block = 0; block < iterations; block += 250)
        {
            foreach (var (_, call, samples) in latency)
            {
                for (var i = 0; i < 250 && block + i < iterations; i++)
                {
                    var t = Stopwatch.GetTimestamp();
                    await call();
                    samples.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
                }
            }
        }

        var lat = result.Add(new Table("Latency of one transaction (pooled connection, loopback TCP)",
            "transaction", "p50 ms", "p99 ms", "max ms", "mean ms", "n"));
        foreach (var (name, _, samples) in latency)
        {
            var d = new Distribution(samples);
            lat.Row(name, Out.F(d.P50, "0.000"), Out.F(d.P99, "0.000"), Out.F(d.Max, "0.000"), Out.F(d.Mean, "0.000"), Out.I(d.Count));
            Out.Line($"context: {name}: {d.Summary()}");
        }
    }

    private static async Task PlainAsync(NpgsqlDataSource dataSource)
    {
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await using var select = new NpgsqlCommand("SELECT 1", connection, transaction);
        await select.ExecuteScalarAsync();
        await transaction.CommitAsync();
    }

    /// <summary>What BeginAsync sends, without creating the EF Core context: isolates the round trip from EF's cost.</summary>
    private static async Task SeparateNoEfAsync(NpgsqlDataSource dataSource, Guid target)
    {
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await using (var set = new NpgsqlCommand(
            "SELECT set_config('app.user_id', $1, true), set_config('app.session_id', $2, true)", connection, transaction))
        {
            set.Parameters.Add(new NpgsqlParameter { Value = TargetUser });
            set.Parameters.Add(new NpgsqlParameter { Value = target.ToString("D") });
            await set.ExecuteNonQueryAsync();
        }

        await using var select = new NpgsqlCommand("SELECT 1", connection, transaction);
        await select.ExecuteScalarAsync();
        await transaction.CommitAsync();
    }

    private static async Task MergedAsync(NpgsqlDataSource dataSource, Guid target)
    {
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await using var batch = new NpgsqlBatch(connection, transaction)
        {
            BatchCommands =
            {
                new NpgsqlBatchCommand("SELECT set_config('app.user_id', $1, true), set_config('app.session_id', $2, true)")
                {
                    Parameters = { new NpgsqlParameter { Value = TargetUser }, new NpgsqlParameter { Value = target.ToString("D") } },
                },
                new NpgsqlBatchCommand("SELECT 1"),
            },
        };
        await batch.ExecuteNonQueryAsync();
        await transaction.CommitAsync();
    }
}
