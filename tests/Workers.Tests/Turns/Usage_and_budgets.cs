using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Workers.Contracts;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Turns;

/// <summary>
/// What turns cost, per turn and per user, and a per-user budget the whole pool keeps: real broker, workers,
/// PostgreSQL and notifier.
/// </summary>
[Collection("worker pools")]
public sealed class Usage_and_budgets(ServicesFixture services, ITestOutputHelper output)
{
    [Fact]
    public async Task Each_turn_records_its_model_tokens_and_cost_and_each_user_gets_only_their_totals_over_REST()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services, settings: new Dictionary<string, string>
        {
            ["Llm__Offline__Tokens"] = "6",
            // US dollars per million tokens: micro-dollars per token.
            ["Llm__Offline__InputPrice"] = "2.5",
            ["Llm__Offline__OutputPrice"] = "10",
        });
        await pool.StartWorkerAsync();
        var notifier = await pool.StartNotifierAsync();
        var alice = Guid.NewGuid();
        for (var n = 1; n <= 3; n++)
        {
            Assert.Equal("TurnCompleted", (await A_chat_turn.TurnAsync(pool, alice, "alice", $"message {n}")).Type);
        }

        Assert.Equal("TurnCompleted", (await A_chat_turn.TurnAsync(pool, Guid.NewGuid(), "bob", "bob's only message")).Type);

        long prompt = 0, completion = 0, cost = 0;
        await using (var admin = await pool.Db.OpenAdminAsync())
        await using (var command = new Npgsql.NpgsqlCommand(
            $"SELECT provider, model, prompt_tokens, completion_tokens, cached_tokens, cost_micros FROM workers.turns WHERE session_id = '{alice}'", admin))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                Assert.Equal(("offline", "offline"), (reader.GetString(0), reader.GetString(1)));
                var (p, c) = (reader.GetInt32(2), reader.GetInt32(3));
                Assert.True(p > 0 && c > 0, "a turn without token counts");
                Assert.Equal(0, reader.GetInt32(4));
                Assert.Equal((long)Math.Round((p * 2.5m) + (c * 10m)), reader.GetInt64(5));
                (prompt, completion, cost) = (prompt + p, completion + c, cost + reader.GetInt64(5));
            }
        }

        using var asAlice = notifier.Http("alice");
        var usage = await asAlice.GetFromJsonAsync<JsonElement>(new Uri("/api/usage", UriKind.Relative));
        output.WriteLine(usage.ToString());
        foreach (var period in new[] { "today", "month" })
        {
            var totals = usage.GetProperty(period);
            Assert.Equal(3, totals.GetProperty("turns").GetInt64());
            Assert.Equal(prompt, totals.GetProperty("promptTokens").GetInt64());
            Assert.Equal(completion, totals.GetProperty("completionTokens").GetInt64());
            Assert.Equal(prompt + completion, totals.GetProperty("tokens").GetInt64());
            Assert.Equal(cost / 1_000_000m, totals.GetProperty("costUsd").GetDecimal());
        }

        Assert.Equal(JsonValueKind.Null, usage.GetProperty("limits").GetProperty("dailyTokens").ValueKind);
        using var asBob = notifier.Http("bob");
        var bobs = await asBob.GetFromJsonAsync<JsonElement>(new Uri("/api/usage", UriKind.Relative));
        Assert.Equal(1, bobs.GetProperty("today").GetProperty("turns").GetInt64());
        using var anonymous = new HttpClient { BaseAddress = notifier.BaseAddress };
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, (await anonymous.GetAsync(new Uri("/api/usage", UriKind.Relative))).StatusCode);
    }

    [Fact]
    public async Task A_budget_refuses_the_turn_after_it_is_spent_across_two_workers_before_the_model_is_called()
    {
        const long Budget = 1500;
        await using var pool = await WorkersSystem.CreateAsync(services.Services, settings: new Dictionary<string, string>
        {
            ["Llm__Offline__Tokens"] = "6",
            ["Llm__Offline__OutputReserve"] = "40",
            ["Usage__DailyTokens"] = Budget.ToString(CultureInfo.InvariantCulture),
        });
        var workers = new[] { await pool.StartWorkerAsync(), await pool.StartWorkerAsync() };
        await pool.WaitForBalanceAsync(workers, TimeSpan.FromSeconds(30));
        // Alice's sessions land on partitions of both workers, so her turns run on both at once.
        var sessions = Enumerable.Range(0, 8).Select(_ => Guid.NewGuid()).ToList();
        var owners = new HashSet<string>();
        foreach (var session in sessions)
        {
            owners.Add(await pool.Db.ScalarAsync<string>(
                $"SELECT worker_id FROM workers.partition_leases WHERE partition = {Partitioning.PartitionOf(session, pool.Partitions)}"));
        }

        Assert.Equal(2, owners.Count);

        var refused = new List<ChatRequested>();
        for (var round = 1; round <= 40 && refused.Select(r => r.SessionId).Distinct().Count() < sessions.Count; round++)
        {
            // One message in flight per session, all sessions at once: the reservations race.
            var requests = sessions.Select(s => Broker.Request(s, "alice", $"round {round} of a chat that spends its budget")).ToList();
            foreach (var request in requests)
            {
                await pool.Broker.PublishAsync(request);
            }

            await pool.Events.WaitForAsync(e => requests.All(r => e.Any(x => x.RequestId == r.RequestId && x.Type is "TurnCompleted" or "TurnFailed")),
                TimeSpan.FromSeconds(30), $"the end of round {round}");
            refused.AddRange(requests.Where(r => pool.Events.Events.Any(e => e.RequestId == r.RequestId && e.Type == "TurnFailed"
                && e.Code == ErrorCodes.QuotaExceeded)));
        }

        var spent = await pool.Db.ScalarAsync<long>("SELECT coalesce(sum(prompt_tokens + completion_tokens), 0) FROM workers.turns WHERE owner_id = 'alice'");
        var turns = await pool.Db.ScalarAsync<long>("SELECT count(*) FROM workers.turns WHERE owner_id = 'alice'");
        output.WriteLine($"{turns} turns spent {spent} of {Budget} tokens; {refused.Count} refused");
        Assert.Equal(sessions.Count, refused.Select(r => r.SessionId).Distinct().Count());
        Assert.InRange(spent, Budget / 2, Budget);
        Assert.Equal(spent, await pool.Db.ScalarAsync<long>("SELECT prompt_tokens + completion_tokens FROM workers.user_usage WHERE owner_id = 'alice'"));
        Assert.Equal(0L, await pool.Db.ScalarAsync<long>("SELECT count(*) FROM workers.usage_reservations"));
        foreach (var request in refused)
        {
            // Refused before the model: no turn, nothing streamed, and the refusal outside the numbered stream (seq 0).
            Assert.Equal(0L, await pool.Db.ScalarAsync<long>($"SELECT count(*) FROM workers.turns WHERE request_id = '{request.RequestId}'"));
            Assert.Equal(0, await pool.Db.ScalarAsync<int>($"SELECT attempts FROM workers.inbox WHERE request_id = '{request.RequestId}'"));
            var events = pool.Events.Events.Where(e => e.RequestId == request.RequestId).ToList();
            Assert.Equal(["TurnFailed"], events.Select(e => e.Type));
            Assert.Equal(0, events[0].Seq);
        }

        // The budget is Alice's: Bob still talks.
        Assert.Equal("TurnCompleted", (await A_chat_turn.TurnAsync(pool, Guid.NewGuid(), "bob", "bob has a budget of his own")).Type);
    }
}
