using System.Text.Json;
using Workers.Contracts;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Turns;

/// <summary>The worker's Semantic Kernel connector against a local server speaking the chat-completions protocol.</summary>
[Collection("worker pools")]
public sealed class OpenAI_compatible_provider(ServicesFixture services)
{
    private static async Task<(WorkersSystem Pool, FakeOpenAI Model)> StartAsync(ServicesFixture services,
        IReadOnlyDictionary<string, string>? extra = null)
    {
        var model = await FakeOpenAI.StartAsync();
        var settings = new Dictionary<string, string>(model.WorkerSettings);
        foreach (var (key, value) in extra ?? new Dictionary<string, string>())
        {
            settings[key] = value;
        }

        var pool = await WorkersSystem.CreateAsync(services.Services, settings: settings);
        await pool.StartWorkerAsync();
        return (pool, model);
    }

    private static Task<RecordedEvent> TurnAsync(WorkersSystem pool, Guid session, string text) =>
        TurnAsync(pool, Broker.Request(session, "alice", text));

    private static async Task<RecordedEvent> TurnAsync(WorkersSystem pool, ChatRequested request)
    {
        await pool.Broker.PublishAsync(request);
        await pool.Events.WaitForAsync(e => e.Any(x => x.RequestId == request.RequestId && x.Type is "TurnCompleted" or "TurnFailed"),
            TimeSpan.FromSeconds(30), "the end of the turn");
        return pool.Events.Events.Single(x => x.RequestId == request.RequestId && x.Type is "TurnCompleted" or "TurnFailed");
    }

    [Fact]
    public async Task A_sessions_prompt_and_temperature_from_the_request_reach_the_provider_and_stay_until_changed()
    {
        var (pool, model) = await StartAsync(services, new Dictionary<string, string> { ["Llm__MaxTemperature"] = "1.5" });
        await using var _ = pool;
        await using var __ = model;
        var session = Guid.NewGuid();
        model.Text("Arr.").Text("Aye.").Text("Hello.");
        foreach (var request in new[]
                 {
                     Broker.Request(session, "alice", "hi") with { SystemPrompt = "You are a terse pirate.", Temperature = 0.3 },
                     Broker.Request(session, "alice", "and now?"),
                     Broker.Request(session, "alice", "be yourself") with { SystemPrompt = "", Temperature = 1.9 },
                 })
        {
            await pool.Broker.PublishAsync(request);
            await pool.Events.WaitForAsync(e => e.Any(x => x.RequestId == request.RequestId && x.Type is "TurnCompleted" or "TurnFailed"),
                TimeSpan.FromSeconds(30), "the end of the turn");
            Assert.Equal("TurnCompleted", pool.Events.Events.Single(x => x.RequestId == request.RequestId && x.Type is "TurnCompleted" or "TurnFailed").Type);
        }

        var sent = model.Requests.Select(r => (System: Content(r.Body.GetProperty("messages")[0]),
            Temperature: r.Body.TryGetProperty("temperature", out var t) ? t.GetDouble() : (double?)null)).ToList();
        Assert.Equal("You are a terse pirate.", sent[0].System);
        Assert.Equal("You are a terse pirate.", sent[1].System); // kept for the session's later turns
        Assert.StartsWith(new Workers.Worker.Model.ModelOptions().SystemPrompt, sent[2].System, StringComparison.Ordinal);
        Assert.InRange(sent[0].Temperature!.Value, 0.2999, 0.3001);
        Assert.InRange(sent[1].Temperature!.Value, 0.2999, 0.3001);
        Assert.Equal(1.5, sent[2].Temperature!.Value, 3); // asked 1.9, capped by the deployment
        Assert.Equal("|1.9", await pool.Db.ScalarAsync<string>(
            $"SELECT coalesce(system_prompt, '') || '|' || temperature FROM workers.sessions WHERE id = '{session}'"));

        // Out of range or of the wrong type: refused to the producer, the session unchanged.
        var bad = Broker.Request(session, "alice", "hotter") with { Temperature = 7 };
        await pool.Broker.PublishAsync(bad);
        await pool.Events.WaitForAsync(e => e.Any(x => x.RequestId == bad.RequestId && x.Type == "TurnFailed"), TimeSpan.FromSeconds(30), "the refusal");
        Assert.Equal(ErrorCodes.InvalidRequest, pool.Events.Events.Single(x => x.RequestId == bad.RequestId).Code);
        Assert.Equal(1.9f, await pool.Db.ScalarAsync<float>($"SELECT temperature FROM workers.sessions WHERE id = '{session}'"));
    }

    [Fact]
    public async Task A_session_chooses_a_named_model_kept_until_changed_and_an_unknown_one_is_refused_naming_the_ones_there_are()
    {
        // A second model at the same endpoint, with its own id, key and prices: what reaches the provider says which ran.
        await using var model = await FakeOpenAI.StartAsync();
        await using var pool = await WorkersSystem.CreateAsync(services.Services, settings: new Dictionary<string, string>(model.WorkerSettings)
        {
            ["Llm__Models__big__BaseUrl"] = model.BaseUrl,
            ["Llm__Models__big__Model"] = "big-model-id",
            ["Llm__Models__big__ApiKey"] = "big-key",
            ["Llm__Models__big__ContextWindow"] = "32000",
            ["Llm__Models__big__OutputPrice"] = "1000000",
            ["Llm__Models__local__Provider"] = "Offline",
        });
        await pool.StartWorkerAsync();
        var session = Guid.NewGuid();
        model.Text("Big", ".").Text("Still big.").Text("Default.").Text("Big again.");
        Task<RecordedEvent> Turn(ChatRequested request) => TurnAsync(pool, request);

        var big = await Turn(Broker.Request(session, "alice", "hi") with { Model = "big" });
        var kept = await Turn(Broker.Request(session, "alice", "again"));
        var back = await Turn(Broker.Request(session, "alice", "and now") with { Model = "" });
        Assert.Equal(["TurnCompleted", "TurnCompleted", "TurnCompleted"], new[] { big.Type, kept.Type, back.Type });
        Assert.Equal([("big-model-id", "Bearer big-key"), ("big-model-id", "Bearer big-key"), ("fake-model", "Bearer test-key")],
            model.Requests.Select(r => (r.Body.GetProperty("model").GetString(), r.Authorization)));
        // Usage is recorded per model, at the chosen model's prices (a dollar a token out: 2 completion tokens).
        Assert.Equal("big-model-id|2000000", await pool.Db.ScalarAsync<string>(
            $"SELECT model || '|' || cost_micros FROM workers.turns WHERE request_id = '{big.RequestId}'"));

        // A name the deployment lacks: refused before it is stored or any model is called; the session keeps its model.
        await Turn(Broker.Request(session, "alice", "x") with { Model = "big" });
        var unknown = await Turn(Broker.Request(session, "alice", "on the moon") with { Model = "moon" });
        Assert.Equal(("TurnFailed", ErrorCodes.InvalidRequest), (unknown.Type, unknown.Code));
        Assert.Contains("'moon' is not one of this deployment's: default, big, local", unknown.Message.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("big", await pool.Db.ScalarAsync<string>($"SELECT model FROM workers.sessions WHERE id = '{session}'"));
        var malformed = await Turn(Broker.Request(session, "alice", "x") with { Model = "big model; DROP" });
        Assert.Equal(("TurnFailed", ErrorCodes.InvalidRequest), (malformed.Type, malformed.Code));
        Assert.Equal(4, model.Requests.Count);

        // The offline model by name, beside an OpenAI-compatible default: it answers, and the endpoint is not called.
        var offline = await Turn(Broker.Request(session, "alice", "what did I say before?") with { Model = "local" });
        Assert.Equal("TurnCompleted", offline.Type);
        Assert.Contains("hi", offline.Text, StringComparison.Ordinal);
        Assert.Equal("offline|offline", await pool.Db.ScalarAsync<string>(
            $"SELECT provider || '|' || model FROM workers.turns WHERE request_id = '{offline.RequestId}'"));
        Assert.Equal(4, model.Requests.Count);
    }

    [Fact]
    public async Task Regenerate_and_edit_replace_the_last_turn_keep_it_as_a_version_and_keep_order_with_requests_queued_behind()
    {
        var (pool, model) = await StartAsync(services);
        await using var _ = pool;
        await using var __ = model;
        var session = Guid.NewGuid();
        model.Text("A1").Text("A2").Text("A2 again").Text("A2 edited").Text("A3");
        // All at once: the replacing requests run in the session's order, between the messages around them.
        var requests = new[]
        {
            Broker.Request(session, "alice", "first"),
            Broker.Request(session, "alice", "second"),
            Broker.Request(session, "alice", "") with { ReplaceLast = true },
            Broker.Request(session, "alice", "second, edited") with { ReplaceLast = true },
            Broker.Request(session, "alice", "third"),
        };
        foreach (var request in requests)
        {
            await pool.Broker.PublishAsync(request);
        }

        await pool.Events.WaitForAsync(e => requests.All(r => e.Any(x => x.RequestId == r.RequestId && x.Type is "TurnCompleted" or "TurnFailed")),
            TimeSpan.FromSeconds(60), "the five turns");
        Assert.All(requests, r => Assert.Contains(pool.Events.Events, x => x.RequestId == r.RequestId && x.Type == "TurnCompleted"));

        // What the model was sent: a replacing turn leaves the turn it replaces out; later turns see only the new version.
        var sent = model.Requests.Select(r => string.Join(" | ", r.Body.GetProperty("messages").EnumerateArray().Skip(1).Select(Content))).ToList();
        Assert.Equal(
        [
            "first",
            "first | A1 | second",
            "first | A1 | second", // regenerate: the same message again, without its old reply
            "first | A1 | second, edited",
            "first | A1 | second, edited | A2 edited | third",
        ], sent);

        // Every version is kept, the replaced ones marked with the turn that replaced them.
        Assert.Equal("1 first A1 -|2 second A2 3|3 second A2 again 4|4 second, edited A2 edited -|5 third A3 -", await pool.Db.ScalarAsync<string>(
            $"SELECT string_agg(turn_no || ' ' || user_text || ' ' || reply_text || ' ' || coalesce(superseded_by::text, '-'), '|' ORDER BY turn_no) " +
            $"FROM workers.turns WHERE session_id = '{session}'"));
        // TurnStarted says which request's turn a new version replaces, so a client shows it in its place.
        Guid? Replaces(ChatRequested r) => pool.Events.Events.Single(x => x.RequestId == r.RequestId && x.Type == "TurnStarted")
            .Message.TryGetProperty("replaces", out var replaces) && replaces.ValueKind == JsonValueKind.String ? replaces.GetGuid() : null;
        Assert.Equal([null, null, requests[1].RequestId, requests[2].RequestId, null], requests.Select(Replaces));
        // And which message it answers, so another tab shows the edit's new text and the regenerate's old one.
        Assert.Equal(requests.Select((r, i) => i == 2 ? requests[1].Text : r.Text), requests.Select(r =>
            pool.Events.Events.Single(x => x.RequestId == r.RequestId && x.Type == "TurnStarted").Message.GetProperty("userText").GetString()));

        // Nothing to replace in a new session: refused, and nothing is kept.
        var empty = Broker.Request(Guid.NewGuid(), "alice", "") with { ReplaceLast = true };
        var refused = await TurnAsync(pool, empty);
        Assert.Equal(("TurnFailed", ErrorCodes.InvalidRequest), (refused.Type, refused.Code));
        Assert.Equal(0L, await pool.Db.ScalarAsync<long>($"SELECT count(*) FROM workers.inbox WHERE request_id = '{empty.RequestId}'"));
    }

    [Fact]
    public async Task Streams_the_reply_sends_history_and_key_and_records_token_usage()
    {
        var (pool, model) = await StartAsync(services);
        await using var _ = pool;
        await using var __ = model;
        var session = Guid.NewGuid();
        model.Text("Hello", " there", "!").Text("Second", " answer");
        Assert.Equal("Hello there!", (await TurnAsync(pool, session, "first message")).Text);
        var second = await TurnAsync(pool, session, "second message");
        Assert.Equal("Second answer", second.Text);
        Assert.Equal(11, second.Message.GetProperty("promptTokens").GetInt32());
        Assert.Equal(2, second.Message.GetProperty("completionTokens").GetInt32());

        var (_, body, authorization) = model.Requests[1];
        Assert.Equal("Bearer test-key", authorization);
        Assert.Equal("fake-model", body.GetProperty("model").GetString());
        Assert.True(body.GetProperty("stream").GetBoolean());
        var messages = body.GetProperty("messages").EnumerateArray().Select(m => (m.GetProperty("role").GetString(), Content(m))).ToList();
        Assert.Equal("system", messages[0].Item1);
        Assert.Equal([("user", "first message"), ("assistant", "Hello there!"), ("user", "second message")], messages.Skip(1));
        Assert.Equal(2, second.Message.GetProperty("completionTokens").GetInt32());
        Assert.Equal("complete|Second answer|2", await pool.Db.ScalarAsync<string>(
            $"SELECT status || '|' || reply_text || '|' || completion_tokens FROM workers.turns WHERE request_id = '{second.RequestId}'"));
    }

    [Fact]
    public async Task A_tool_call_runs_the_notes_plugin_in_the_sessions_scope_and_emits_ToolInvoked()
    {
        var (pool, model) = await StartAsync(services);
        await using var _ = pool;
        await using var __ = model;
        var session = Guid.NewGuid();
        model.ToolCall("notes-remember", """{"key":"color","value":"blue"}""").Text("Saved", " it.");
        var completed = await TurnAsync(pool, session, "remember my color is blue");
        Assert.Equal("Saved it.", completed.Text);

        var turn = pool.Events.Events.Where(e => e.RequestId == completed.RequestId).ToList();
        // One event as the call starts, one as it ends, paired by the provider's call id.
        var tool = turn.Where(e => e.Type == "ToolInvoked").ToList();
        Assert.All(tool, t => Assert.Equal("notes.remember", t.Message.GetProperty("tool").GetString()));
        Assert.All(tool, t => Assert.Equal("call_1", t.Message.GetProperty("callId").GetString()));
        Assert.Equal(["started", "ok"], tool.Select(t => t.Message.GetProperty("status").GetString()));
        Assert.Equal(turn.Select(e => e.Seq).Order(), turn.Select(e => e.Seq));
        Assert.Equal($"alice|{session}|blue", await pool.Db.ScalarAsync<string>(
            "SELECT owner_id || '|' || session_id || '|' || value FROM workers.session_notes WHERE key = 'color'"));

        // The tools offered to the model take no user or session id, and the tool's result went back to it.
        var tools = model.Requests[0].Body.GetProperty("tools").EnumerateArray().ToList();
        Assert.Equal(["notes-list", "notes-recall", "notes-remember"], tools.Select(t => t.GetProperty("function").GetProperty("name").GetString()).Order());
        var parameters = tools.SelectMany(t => t.GetProperty("function").GetProperty("parameters").GetProperty("properties").EnumerateObject())
            .Select(p => p.Name.ToLowerInvariant()).ToList();
        Assert.DoesNotContain(parameters, p => p.Contains("user", StringComparison.Ordinal) || p.Contains("session", StringComparison.Ordinal));
        Assert.Contains(model.Requests[1].Body.GetProperty("messages").EnumerateArray(), m => m.GetProperty("role").GetString() == "tool");
    }

    [Fact]
    public async Task A_disconnect_mid_stream_fails_the_turn_keeps_its_partial_text_and_the_session_carries_on()
    {
        var (pool, model) = await StartAsync(services);
        await using var _ = pool;
        await using var __ = model;
        var session = Guid.NewGuid();
        model.TextThenDisconnect("partial ", "reply").Text("fine");
        var failed = await TurnAsync(pool, session, "msg 1");
        Assert.Equal(ErrorCodes.ModelError, failed.Code);
        Assert.Equal("The model did not answer; please try again.", failed.Message.GetProperty("message").GetString());
        Assert.Equal("failed|partial reply", await pool.Db.ScalarAsync<string>(
            $"SELECT status || '|' || reply_text FROM workers.turns WHERE request_id = '{failed.RequestId}'"));
        Assert.Equal("fine", (await TurnAsync(pool, session, "msg 2")).Text);
    }

    [Fact]
    public async Task A_429_is_retried_after_its_Retry_After()
    {
        var (pool, model) = await StartAsync(services);
        await using var _ = pool;
        await using var __ = model;
        model.Status(429, retryAfter: "2").Text("after", " waiting");
        Assert.Equal("after waiting", (await TurnAsync(pool, Guid.NewGuid(), "msg 1")).Text);
        Assert.Equal(2, model.Requests.Count);
        Assert.True(model.Requests[1].At - model.Requests[0].At >= TimeSpan.FromSeconds(1.9), "Retry-After was not honoured");
    }

    [Fact]
    public async Task A_call_that_times_out_is_retried()
    {
        var (pool, model) = await StartAsync(services, new Dictionary<string, string> { ["Llm__OpenAI__Timeout"] = "00:00:02" });
        await using var _ = pool;
        await using var __ = model;
        model.Stall(TimeSpan.FromSeconds(10)).Text("eventually");
        Assert.Equal("eventually", (await TurnAsync(pool, Guid.NewGuid(), "msg 1")).Text);
        Assert.Equal(2, model.Requests.Count);
        Assert.InRange(model.Requests[1].At - model.Requests[0].At, TimeSpan.FromSeconds(1.9), TimeSpan.FromSeconds(8));
    }

    [Fact]
    public async Task A_500_that_persists_fails_after_bounded_retries_with_a_safe_message()
    {
        var (pool, model) = await StartAsync(services);
        await using var _ = pool;
        await using var __ = model;
        model.Status(500).Status(500).Status(500).Text("recovered");
        var session = Guid.NewGuid();
        var failed = await TurnAsync(pool, session, "msg 1");
        Assert.Equal(ErrorCodes.ModelError, failed.Code);
        var message = failed.Message.GetProperty("message").GetString()!;
        Assert.DoesNotContain("500", message, StringComparison.Ordinal);
        Assert.DoesNotContain("sk-secret", message, StringComparison.Ordinal);
        Assert.Equal(3, model.Requests.Count);
        Assert.Equal("recovered", (await TurnAsync(pool, session, "msg 2")).Text);
    }

    private static string? Content(JsonElement message) =>
        message.TryGetProperty("content", out var content)
            ? content.ValueKind == JsonValueKind.String ? content.GetString()
            : string.Concat(content.EnumerateArray().Select(p => p.GetProperty("text").GetString()))
            : null;
}
