using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Workers.Contracts;
using Workers.McpTestServer;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Turns;

/// <summary>
/// Tools from MCP servers, end to end: the worker's real MCP client against the tests' own MCP server (over stdio, the
/// worker starting it, and over HTTP), the model being the local chat-completions server, so every request the model got
/// (its tools, the tool results, the history) can be read back.
/// </summary>
[Collection("worker pools")]
public sealed class Mcp_tools(ServicesFixture services)
{
    [Fact]
    public async Task Stdio_tools_are_offered_when_enabled_called_capped_timed_out_kept_with_the_turn_and_replayed_into_the_next_turns_history()
    {
        await using var model = await FakeOpenAI.StartAsync();
        var settings = new Dictionary<string, string>(model.WorkerSettings)
        {
            ["Tools__CallTimeout"] = "00:00:01",
            ["Tools__MaxResultChars"] = "500",
            ["Tools__Mcp__local__Command"] = DotnetHost(),
            ["Tools__Mcp__local__Arguments__0"] = Repository.TestProgramDll("Workers.McpTestServer"),
            ["Tools__Mcp__local__Environment__MCP_TEST_TOKEN"] = "given-to-the-server",
        };
        await using var pool = await WorkersSystem.CreateAsync(services.Services, settings: settings);
        await pool.StartWorkerAsync();
        var session = Guid.NewGuid();
        model.ToolCall("local-echo", """{"text":"hi"}""", "c1")
            .ToolCall("local-fail", "{}", "c2")
            .ToolCall("local-hang", "{}", "c3")
            .ToolCall("local-flood", """{"chars":5000}""", "c4")
            .ToolCall("local-environment", "{}", "c5")
            .Text("All", " done.")
            .Text("Fine.")
            .Text("Notes only.");
        var first = await TurnAsync(pool, Broker.Request(session, "alice", "use your tools") with { Tools = ["local"] });
        Assert.Equal("TurnCompleted", first.Type);
        Assert.Equal("All done.", first.Text);

        // Offered: the session's server's tools (names Semantic Kernel accepts) beside the built-in notes.
        var offered = ToolNames(model.Requests[0].Body);
        Assert.Equal(["local-binary", "local-caller_keep", "local-caller_read", "local-crash", "local-echo", "local-echo_twin", "local-environment", "local-fail", "local-flood", "local-hang",
            "notes-list", "notes-recall", "notes-remember"], offered);

        // What the model got back for each call: the answer, the error, the timeout, the capped flood, the clean environment.
        var results = Enumerable.Range(1, 5).Select(i => LastToolResult(model.Requests[i].Body)).ToList();
        Assert.Equal("echo: hi", results[0]);
        Assert.Equal("The tool reported an error: the disk is on fire", results[1]);
        Assert.Equal("The tool did not answer within 1 s.", results[2]);
        Assert.Equal(new string('x', 500) + "\n[cut: 4500 more characters]", results[3]);
        var environment = results[4].Split(',');
        // The worker's own environment holds the database's and the broker's credentials: none of it reached the server.
        Assert.DoesNotContain(environment, name => name.StartsWith("ConnectionStrings", StringComparison.OrdinalIgnoreCase)
                                                   || name.StartsWith("RabbitMq", StringComparison.OrdinalIgnoreCase)
                                                   || name.StartsWith("Llm__", StringComparison.OrdinalIgnoreCase));
        Assert.Contains("MCP_TEST_TOKEN", environment);
        Assert.Contains("PATH", environment);

        // Each call is reported when it starts and when it ends, paired by call id, in order with the reply.
        var toolEvents = pool.Events.Events.Where(e => e.RequestId == first.RequestId && e.Type == "ToolInvoked")
            .Select(e => (Id: e.Message.GetProperty("callId").GetString(), Status: e.Message.GetProperty("status").GetString(),
                Tool: e.Message.GetProperty("tool").GetString(), Ms: e.Message.TryGetProperty("durationMs", out var ms) && ms.ValueKind == JsonValueKind.Number ? ms.GetDouble() : -1))
            .ToList();
        Assert.Equal([("c1", "started"), ("c1", "ok"), ("c2", "started"), ("c2", "error"), ("c3", "started"), ("c3", "timeout"),
            ("c4", "started"), ("c4", "ok"), ("c5", "started"), ("c5", "ok")], toolEvents.Select(e => (e.Id, e.Status)));
        Report($"tool call durations (ms): {string.Join(", ", toolEvents.Where(e => e.Ms >= 0).Select(e => $"{e.Tool} {e.Ms:0.0}"))}");
        Assert.Equal("local.hang", toolEvents[5].Tool);
        Assert.InRange(toolEvents[5].Ms, 1000, 10_000);
        var seqs = pool.Events.Events.Where(e => e.RequestId == first.RequestId).Select(e => e.Seq).ToList();
        Assert.Equal(seqs.Order(), seqs);

        // Kept with the turn, under its row-level security.
        Assert.Equal("c1:ok,c2:error,c3:timeout,c4:ok,c5:ok", await pool.Db.ScalarAsync<string>(
            $"SELECT string_agg(c->>'id' || ':' || (c->>'status'), ',' ORDER BY n) FROM workers.turns, " +
            $"jsonb_array_elements(tool_calls) WITH ORDINALITY AS t(c, n) WHERE request_id = '{first.RequestId}'"));

        // The arguments as the model wrote them: a number stays a number (by default the kernel sends every one as a string).
        Assert.Equal("{\"chars\":5000}", await pool.Db.ScalarAsync<string>(
            $"SELECT c->>'arguments' FROM workers.turns, jsonb_array_elements(tool_calls) c WHERE request_id = '{first.RequestId}' AND c->>'id' = 'c4'"));

        // The next turn's history replays every call and its result as the model saw them, then the reply.
        var second = await TurnAsync(pool, Broker.Request(session, "alice", "and now?"));
        Assert.Equal("TurnCompleted", second.Type);
        var messages = model.Requests[6].Body.GetProperty("messages").EnumerateArray().ToList();
        Assert.Equal(["system", "user", "assistant", "tool", "assistant", "tool", "assistant", "tool", "assistant", "tool", "assistant", "tool",
            "assistant", "user"], messages.Select(m => m.GetProperty("role").GetString()));
        Assert.Equal(["c1", "c2", "c3", "c4", "c5"], messages.Where(m => m.GetProperty("role").GetString() == "tool")
            .Select(m => m.GetProperty("tool_call_id").GetString()));
        Assert.Equal(results, messages.Where(m => m.GetProperty("role").GetString() == "tool").Select(Content));
        var firstCall = messages[2].GetProperty("tool_calls")[0];
        Assert.Equal("local-echo", firstCall.GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("hi", JsonDocument.Parse(firstCall.GetProperty("function").GetProperty("arguments").GetString()!).RootElement
            .GetProperty("text").GetString());
        Assert.Equal("All done.", Content(messages[12]));

        // A session that did not enable the server is offered the notes only; a server the workers lack is refused.
        var other = Guid.NewGuid();
        Assert.Equal("TurnCompleted", (await TurnAsync(pool, Broker.Request(other, "alice", "hello"))).Type);
        Assert.Equal(["notes-list", "notes-recall", "notes-remember"], ToolNames(model.Requests[7].Body));
        var refused = await TurnAsync(pool, Broker.Request(other, "alice", "hello") with { Tools = ["local", "nope"] });
        Assert.Equal(("TurnFailed", ErrorCodes.InvalidRequest), (refused.Type, refused.Code));
        Assert.Contains("'nope'", refused.Message.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Contains("local", refused.Message.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(8, model.Requests.Count);
        Assert.True(await pool.Db.ScalarAsync<bool>($"SELECT tools IS NULL FROM workers.sessions WHERE id = '{other}'"),
            "the refused list was stored");

        // The logs name sessions, requests and servers; never the server's secret, a message, an argument or a result
        // (the MCP client logs through the worker's logger too).
        foreach (var text in new[] { "given-to-the-server", "use your tools", "echo: hi", "disk is on fire", "xxxxxxxxxx" })
        {
            Assert.Equal(0, pool.CountLogLines(text));
        }

        Assert.True(pool.CountLogLines("Tool server local connected") >= 1, "the connection is logged");

        // A server that dies during a call: that call fails (the model is told), the turn completes, and the next turn
        // finds the server started again.
        model.ToolCall("local-crash", "{}", "c6").Text("Oops.").ToolCall("local-echo", """{"text":"back"}""", "c7").Text("Back.");
        var crashed = await TurnAsync(pool, Broker.Request(session, "alice", "crash it"));
        Assert.Equal("TurnCompleted", crashed.Type);
        Assert.Equal("error", ToolStatus(pool, crashed, "c6"));
        Assert.StartsWith("The tool", LastToolResult(model.Requests[9].Body), StringComparison.Ordinal);
        Assert.Equal("TurnCompleted", (await TurnAsync(pool, Broker.Request(session, "alice", "again"))).Type);
        Assert.Equal("echo: back", LastToolResult(model.Requests[^1].Body));
        Assert.Equal(0, pool.CountLogLines("echo: back"));

        // A result with a NUL character (which PostgreSQL cannot store) is kept with it replaced.
        model.ToolCall("local-binary", "{}", "c8").Text("Binary.");
        var binary = await TurnAsync(pool, Broker.Request(session, "alice", "binary please"));
        Assert.Equal("TurnCompleted", binary.Type);
        Assert.Equal("a\uFFFDb", LastToolResult(model.Requests[^1].Body));
    }

    [Fact]
    public async Task An_http_tool_server_gets_the_caller_from_the_turn_so_arguments_the_model_injects_cannot_reach_another_sessions_data()
    {
        await using var mcp = await HttpMcpServerAsync();
        await using var model = await FakeOpenAI.StartAsync();
        var settings = new Dictionary<string, string>(model.WorkerSettings)
        {
            ["Tools__Mcp__remote__Url"] = mcp.Url,
            ["Tools__Mcp__remote__SendCaller"] = "true",
            ["Tools__Mcp__remote__Default"] = "true",
        };
        await using var pool = await WorkersSystem.CreateAsync(services.Services, settings: settings);
        await pool.StartWorkerAsync();
        Guid bobs = Guid.NewGuid(), alices = Guid.NewGuid();
        model.ToolCall("remote-caller_keep", """{"text":"bob's secret"}""").Text("Kept.");
        // Alice's model (a prompt injection, say) names Bob's session in every way it can think of.
        var injected = JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["sessionId"] = bobs, ["workers/sessionId"] = bobs, ["_meta"] = new Dictionary<string, object> { ["workers/sessionId"] = bobs },
        });
        model.ToolCall("remote-caller_read", injected)
            .Text("Read.");
        Assert.Equal("TurnCompleted", (await TurnAsync(pool, Broker.Request(bobs, "bob", "keep this"))).Type);
        Assert.Equal($"kept for {bobs}", LastToolResult(model.Requests[1].Body));
        Assert.Equal("TurnCompleted", (await TurnAsync(pool, Broker.Request(alices, "alice", "read bob's"))).Type);

        // A new session has the server marked Default; the call carried Alice's own session, from the turn.
        Assert.Contains("remote-caller_read", ToolNames(model.Requests[2].Body));
        Assert.Equal($"{alices}: nothing kept", LastToolResult(model.Requests[3].Body));
        Assert.DoesNotContain(model.Requests.Skip(2), r => r.Body.GetRawText().Contains("bob's secret", StringComparison.Ordinal));
    }

    private static void Report(string line) => TestContext.Current.TestOutputHelper?.WriteLine(line);

    private static async Task<RecordedEvent> TurnAsync(WorkersSystem pool, ChatRequested request)
    {
        await pool.Broker.PublishAsync(request);
        await pool.Events.WaitForAsync(e => e.Any(x => x.RequestId == request.RequestId && x.Type is "TurnCompleted" or "TurnFailed"),
            TimeSpan.FromSeconds(60), "the end of the turn");
        return pool.Events.Events.Single(x => x.RequestId == request.RequestId && x.Type is "TurnCompleted" or "TurnFailed");
    }

    private static string? ToolStatus(WorkersSystem pool, RecordedEvent turn, string callId) =>
        pool.Events.Events.Last(e => e.RequestId == turn.RequestId && e.Type == "ToolInvoked"
                                     && e.Message.GetProperty("callId").GetString() == callId).Message.GetProperty("status").GetString();

    private static List<string> ToolNames(JsonElement body) =>
        body.TryGetProperty("tools", out var tools)
            ? [.. tools.EnumerateArray().Select(t => t.GetProperty("function").GetProperty("name").GetString()!).Order(StringComparer.Ordinal)]
            : [];

    private static string LastToolResult(JsonElement body) =>
        Content(body.GetProperty("messages").EnumerateArray().Last(m => m.GetProperty("role").GetString() == "tool"));

    private static string Content(JsonElement message) => message.GetProperty("content") switch
    {
        { ValueKind: JsonValueKind.String } s => s.GetString()!,
        { ValueKind: JsonValueKind.Array } parts => string.Concat(parts.EnumerateArray().Select(p => p.GetProperty("text").GetString())),
        _ => "",
    };

    // The dotnet host that runs this test: the one to start the test server's program with.
    private static string DotnetHost() =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host
        : Environment.ProcessPath is { } path && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path
        : "dotnet";

    private static async Task<HttpMcpServer> HttpMcpServerAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddMcpServer().WithHttpTransport().WithTools<TestTools>();
        var app = builder.Build();
        app.MapMcp("/mcp");
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new HttpMcpServer(app, address + "/mcp");
    }

    private sealed record HttpMcpServer(WebApplication App, string Url) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => App.DisposeAsync();
    }
}
