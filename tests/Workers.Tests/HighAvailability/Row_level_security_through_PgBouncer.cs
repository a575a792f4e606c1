using Npgsql;
using Workers.Core.Sessions;
using Workers.Tests.Infrastructure;
using Workers.Tests.Sessions;

namespace Workers.Tests.HighAvailability;

/// <summary>
/// Under PgBouncer's transaction pooling, consecutive transactions of different clients run on the same server
/// connection. The RLS context is set with <c>set_config(..., true)</c>, local to its transaction, so it cannot follow
/// the server connection into the next client's transaction; a session-level setting would.
/// </summary>
[Collection("ha faults")]
public sealed class Row_level_security_through_PgBouncer(HaTopology ha) : IClassFixture<HaTopology>
{
    [Fact]
    public async Task Two_users_interleaved_over_one_server_connection_each_see_only_their_own_rows()
    {
        var services = ha.Require();
        await using var db = await services.CreateDatabaseAsync();
        var seed = await Seed.TwoUsersAsync(db);
        // Clients that open, use and return one connection at a time, as the hosts' pools do, through the bouncers.
        await using var dataSource = NpgsqlDataSource.Create(db.App.ConnectionString);
        var store = new SessionStore(dataSource);
        var backends = new List<(string Who, int Pid)>();

        for (var round = 0; round < 10; round++)
        {
            foreach (var user in new[] { Seed.UserA, Seed.UserB })
            {
                await using (var scope = await store.BeginAsync(user, seed.SessionOf(user), CancellationToken.None))
                {
                    await using var command = await scope.CommandAsync(
                        "SELECT pg_backend_pid(), (SELECT array_agg(DISTINCT owner_id) FROM workers.turns), (SELECT count(*) FROM workers.sessions)");
                    await using var reader = await command.ExecuteReaderAsync();
                    Assert.True(await reader.ReadAsync());
                    backends.Add((user, reader.GetInt32(0)));
                    Assert.Equal([user], reader.GetFieldValue<string[]>(1));
                    Assert.Equal(1L, reader.GetInt64(2));
                    await reader.DisposeAsync();
                    await scope.CommitAsync(CancellationToken.None); // committed, as the hosts' writes are (a rollback would undo even a session-level setting)
                }

                // Straight after, a transaction that sets no context: it must see nothing, whoever ran before it.
                await using var bare = await dataSource.OpenConnectionAsync();
                await using var tx = await bare.BeginTransactionAsync();
                await using var probe = new NpgsqlCommand(
                    "SELECT pg_backend_pid(), coalesce(current_setting('app.user_id', true), ''), (SELECT count(*) FROM workers.turns)", bare, tx);
                await using var row = await probe.ExecuteReaderAsync();
                Assert.True(await row.ReadAsync());
                backends.Add(("nobody", row.GetInt32(0)));
                Assert.True(row.GetString(1) == "" && row.GetInt64(2) == 0,
                    $"a transaction without context, after {user}'s on server process {backends[^2].Pid}, ran on {row.GetInt32(0)} " +
                    $"as '{row.GetString(1)}' and saw {row.GetInt64(2)} turns");
            }
        }

        // The point of the test: the users' transactions really shared server connections (else it proved nothing).
        var shared = backends.GroupBy(b => b.Pid).Count(g => g.Select(b => b.Who).Distinct().Count() == 3);
        Assert.True(shared > 0, $"no server connection ran transactions of alice, bob and nobody: {string.Join(", ", backends)}");
    }
}
