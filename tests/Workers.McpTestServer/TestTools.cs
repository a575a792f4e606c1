using System.Collections.Concurrent;
using System.ComponentModel;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace Workers.McpTestServer;

/// <summary>
/// Tools for the tests: one that answers, one that fails, one that never answers, one that answers too much, one that
/// ends its own process, one that shows the environment it was started with, and a per-caller store that trusts only the caller the worker puts in
/// <c>_meta</c> (as a server keeping data per user should).
/// </summary>
[McpServerToolType]
public sealed class TestTools
{
    private static readonly ConcurrentDictionary<string, string> Kept = new(StringComparer.Ordinal);

    [McpServerTool(Name = "echo"), Description("Repeats the text.")]
    public static string Echo([Description("Text to repeat")] string text)
    {
        // As a careless server might: what it was given, on stderr (the worker must not log it).
        Console.Error.WriteLine($"echo: {text}");
        return $"echo: {text}";
    }

    [McpServerTool(Name = "binary"), Description("Answers with a NUL character inside.")]
    public static string Binary() => "a\0b";

    // Two names that are the same once made safe for Semantic Kernel ('.' is not allowed): one of them is offered.
    [McpServerTool(Name = "echo.twin"), Description("Repeats the text.")]
    public static string EchoTwinDot([Description("Text to repeat")] string text) => $"echo: {text}";

    [McpServerTool(Name = "echo_twin"), Description("Repeats the text.")]
    public static string EchoTwinUnderscore([Description("Text to repeat")] string text) => $"echo: {text}";

    [McpServerTool(Name = "fail"), Description("Always reports an error.")]
    public static CallToolResult Fail() => new() { IsError = true, Content = [new TextContentBlock { Text = "the disk is on fire" }] };

    [McpServerTool(Name = "hang"), Description("Never answers.")]
    public static async Task<string> HangAsync(CancellationToken cancellationToken)
    {
        await Task.Delay(Timeout.Infinite, cancellationToken);
        return "unreachable";
    }

    [McpServerTool(Name = "flood"), Description("Answers with that many characters.")]
    public static string Flood([Description("How many")] int chars) => new('x', chars);

    [McpServerTool(Name = "crash"), Description("Ends the server's process.")]
    public static string Crash()
    {
        System.Environment.Exit(3);
        return "unreachable";
    }

    [McpServerTool(Name = "environment"), Description("The names of the server's environment variables.")]
    public static string Environment() =>
        string.Join(",", System.Environment.GetEnvironmentVariables().Keys.Cast<string>().Order(StringComparer.Ordinal));

    [McpServerTool(Name = "caller_keep"), Description("Keeps a text for the calling session.")]
    public static string Keep(RequestContext<CallToolRequestParams> context, [Description("Text to keep")] string text)
    {
        var session = CallerSession(context);
        Kept[session] = text;
        return $"kept for {session}";
    }

    [McpServerTool(Name = "caller_read"), Description("Reads what the calling session kept.")]
    public static string Read(RequestContext<CallToolRequestParams> context)
    {
        var session = CallerSession(context);
        return Kept.TryGetValue(session, out var text) ? $"{session}: {text}" : $"{session}: nothing kept";
    }

    private static string CallerSession(RequestContext<CallToolRequestParams> context) =>
        context.Params?.Meta?["workers/sessionId"]?.GetValue<string>() ?? "no caller";
}
