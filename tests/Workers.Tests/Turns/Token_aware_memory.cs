using System.Text.Json;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Turns;

/// <summary>
/// A conversation longer than the model's window, end to end (broker, worker, PostgreSQL): the history is counted in
/// tokens, the oldest turns are folded into a stored summary when the prompt would pass 90 % of the window, the
/// summary is written once and reused by the turns after it, and the agent still knows how the conversation began.
/// </summary>
[Collection("worker pools")]
public sealed class Token_aware_memory(ServicesFixture services, ITestOutputHelper output)
{
    private const int Window = 2000;
    private const int Reserve = 300;
    private const string First = "my first message is about a red kite";

    [Fact]
    public async Task Summarisation_triggers_at_the_threshold_the_summary_is_stored_once_and_the_first_message_is_still_known()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services, settings: new Dictionary<string, string>
        {
            ["Llm__Offline__Tokens"] = "1",
            ["Llm__Offline__ContextWindow"] = $"{Window}",
            ["Llm__Offline__OutputReserve"] = $"{Reserve}",
        });
        await pool.StartWorkerAsync();
        var session = Guid.NewGuid();
        var bystander = Guid.NewGuid();
        // About 70 tokens a message; the offline reply repeats it, so a turn is about 150.
        var texts = new List<string> { First };
        texts.AddRange(Enumerable.Range(2, 48).Select(n => $"turn {n}: " + string.Join(' ', Enumerable.Repeat("lorem", 60))));
        texts.Add("What was my first message?");
        var requests = texts.Select(text => Broker.Request(session, "alice", text)).ToList();
        var bobs = Broker.Request(bystander, "bob", "bob's own first words");
        await pool.Broker.PublishAsync(bobs);
        // One at a time, as a user types: a session holds only a few waiting requests (session_busy beyond).
        foreach (var request in requests)
        {
            await pool.Broker.PublishAsync(request);
            await pool.Events.WaitForAsync(e => e.Any(x => x.RequestId == request.RequestId && x.Type is "TurnCompleted" or "TurnFailed"),
                TimeSpan.FromSeconds(30), $"the end of turn {requests.IndexOf(request) + 1}");
        }

        Assert.DoesNotContain(pool.Events.Events, e => e.SessionId == session && e.Type == "TurnFailed");

        var started = requests.Select(r => pool.Events.Events.Single(e => e.RequestId == r.RequestId && e.Type == "TurnStarted").Message).ToList();
        var context = started.Select(m => m.GetProperty("contextTokens").GetInt32()).ToList();
        var through = started.Select(m => m.TryGetProperty("summarizedThroughTurn", out var t) && t.ValueKind == JsonValueKind.Number
            ? t.GetInt64() : (long?)null).ToList();
        var folds = started.Select((m, i) => (Turn: i + 1, Updated: m.TryGetProperty("summaryUpdated", out var u) && u.ValueKind == JsonValueKind.True))
            .Where(x => x.Updated).Select(x => x.Turn).ToList();
        output.WriteLine($"context tokens per turn: {string.Join(", ", context)}");
        output.WriteLine($"summary through turn: {string.Join(", ", through.Select(t => t?.ToString() ?? "-"))}; folds at turns {string.Join(", ", folds)}");

        // Every prompt stays under 90 % of the window with the reply's reserve; a folding turn gets down to 60 %.
        Assert.All(context, tokens => Assert.InRange(tokens + Reserve, 1, Window * 90 / 100));
        Assert.All(folds, turn => Assert.InRange(context[turn - 1] + Reserve, 1, Window * 60 / 100));
        // Folds are rare (each one buys several turns), and until the first the whole history went as it was said.
        Assert.InRange(folds.Count, 2, requests.Count / 4);
        Assert.All(through.Take(folds[0] - 1), t => Assert.Null(t));
        Assert.True(context[folds[0] - 2] + Reserve > Window * 60 / 100, "the first fold came long before the threshold");
        // Stored once: the turns after a fold reuse its summary (the same coverage, no new summarisation).
        for (var turn = folds[0]; turn <= requests.Count; turn++)
        {
            var latestFold = folds.Last(f => f <= turn);
            Assert.Equal(through[latestFold - 1], through[turn - 1]);
        }

        Assert.Equal(through[^1], await pool.Db.ScalarAsync<long>($"SELECT through_turn FROM workers.session_memory WHERE session_id = '{session}'"));
        var summary = await pool.Db.ScalarAsync<string>($"SELECT summary FROM workers.session_memory WHERE session_id = '{session}'");
        Assert.StartsWith($"Earlier, the user said:\n- {First}\n", summary, StringComparison.Ordinal);
        Assert.Equal(0L, await pool.Db.ScalarAsync<long>($"SELECT count(*) FROM workers.turns WHERE session_id = '{session}' AND tokens IS NULL"));

        // The figure for the notes: what the prompt would have been with every earlier turn as it was said.
        var stored = new List<long>();
        for (var turn = 1; turn <= requests.Count; turn++)
        {
            stored.Add(await pool.Db.ScalarAsync<int>($"SELECT tokens FROM workers.turns WHERE session_id = '{session}' AND turn_no = {turn}"));
        }

        var system = new Workers.Worker.Model.ModelOptions().SystemPrompt;
        var whole = texts.Select((text, i) => Workers.Worker.Memory.TokenCount.PerRequest + Workers.Worker.Memory.TokenCount.Message("o200k_base", system)
            + Workers.Worker.Memory.TokenCount.Message("o200k_base", text) + stored.Take(i).Sum()).ToList();
        output.WriteLine($"{requests.Count} turns: prompt tokens sent {context.Sum()}, with every turn as it was said {whole.Sum()}: " +
                         $"{(whole.Sum() - context.Sum()) / (double)requests.Count:F0} saved per turn on average, " +
                         $"{whole[^1] - context[^1]} at the last turn ({whole[^1]} would not fit the {Window}-token window)");

        var usage = requests.Select(r => pool.Events.Events.Single(e => e.RequestId == r.RequestId && e.Type == "TurnCompleted").Message)
            .Select(m => m.GetProperty("promptTokens").GetInt32() + m.GetProperty("completionTokens").GetInt32()).ToList();
        output.WriteLine($"model tokens billed (prompt + completion, offline model's word counts): folding turns " +
                         $"{folds.Average(t => usage[t - 1]):F0} on average, the turn before each {folds.Average(t => usage[t - 2]):F0}");

        // Turn 1 left the prompt long ago, but the summary kept it.
        var last = pool.Events.Events.Single(e => e.RequestId == requests[^1].RequestId && e.Type == "TurnCompleted");
        Assert.Equal($"Your first message in this session was: \"{First}\".", last.Text);
        // Another user's session on the same worker: answered from its own history only, and no summary of its own.
        await pool.Events.WaitForAsync(e => e.Any(x => x.RequestId == bobs.RequestId && x.Type == "TurnCompleted"), TimeSpan.FromSeconds(30), "bob's turn");
        var bobsReply = pool.Events.Events.Single(e => e.RequestId == bobs.RequestId && e.Type == "TurnCompleted");
        Assert.DoesNotContain("kite", bobsReply.Text, StringComparison.Ordinal);
        Assert.Equal(0L, await pool.Db.ScalarAsync<long>($"SELECT count(*) FROM workers.session_memory WHERE session_id = '{bystander}'"));
    }
}
