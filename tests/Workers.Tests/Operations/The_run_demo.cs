using Workers.Tests.Infrastructure;
using Workers.Tests.Notifier;

namespace Workers.Tests.Operations;

/// <summary>
/// <c>./run.sh</c> plays compose/local/demo.js once the system is up: two users chat at once through the hub, replies
/// stream in, and Bob cannot get at what Alice told the agent. Here it runs against a notifier and a worker the test
/// starts, as <c>run.sh</c> runs it.
/// </summary>
[Collection("worker pools")]
public sealed class The_run_demo(ServicesFixture services)
{
    [Fact]
    public async Task Two_users_chat_at_once_with_streamed_replies_and_neither_sees_the_other()
    {
        // The offline model at its run.sh pace (the tests' default streams at once).
        var (pool, notifier) = await NotifierSystem.StartAsync(services, new Dictionary<string, string>
        {
            ["Llm__Offline__Tokens"] = "24", ["Llm__Offline__TokenDelay"] = "00:00:00.020",
        });
        await using var _ = pool;
        var (exit, output) = await ExternalProgram.RunAsync("node", ["compose/local/demo.js", notifier.BaseAddress.ToString()], Repository.Root,
            new() { ["NODE_PATH"] = Path.Combine(Repository.Root, "src", "Workers.Notifier", "ChatPage", "node_modules") },
            TimeSpan.FromMinutes(2));
        Assert.True(exit == 0, $"demo exited {exit}:\n{output}");
        var lines = output.Split('\n');
        // Streamed: several deltas per reply, and each user's first reply streams while the other's does.
        int First(string prefix) => Array.FindIndex(lines, l => l.StartsWith(prefix, StringComparison.Ordinal));
        Assert.True(lines.Count(l => l.StartsWith("alice ‹ ", StringComparison.Ordinal)) >= 6, output);
        Assert.True(First("bob   ‹ ") < First("alice ✔") && First("alice ‹ ") < First("bob   ✔"),
            $"the two replies did not stream side by side:\n{output}");
        Assert.Contains(lines, l => l.StartsWith("alice ✔", StringComparison.Ordinal) && l.Contains("4711", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("bob   ✔ I have no note called 'my locker code'", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.StartsWith("bob", StringComparison.Ordinal) && l.Contains("4711", StringComparison.Ordinal));
    }
}
