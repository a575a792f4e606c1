using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;

namespace Workers.Worker.Tools;

/// <summary>
/// An MCP server's tool as one turn offers it to the model. Bare, an MCP tool would hand the model its result as
/// serialised content objects, with no size cap and no deadline, and a name with a '.' would not even register. Here:
/// a name Semantic Kernel accepts, the call under <see cref="ToolOptions.CallTimeout"/>, the result as plain text
/// (capped by <see cref="ToolEventFilter"/>), a server's error or timeout as a <see cref="ToolCallException"/>, and,
/// when the server asks for it, the turn's own user and session in <c>_meta</c>; nothing the model writes can set them.
/// </summary>
public sealed class McpTool(McpClientTool tool, TimeSpan timeout, JsonObject? caller) : DelegatingAIFunction(tool)
{
    /// <summary>The server's tools under names Semantic Kernel registers and OpenAI accepts: ASCII letters, digits and
    /// '_' only, <c>server-name</c> at most 64 characters, each name once (a server's own names could collide once made
    /// safe, and a duplicate would fail every turn that offers them). Returns the tools dropped.</summary>
    public static (List<McpClientTool> Tools, List<string> Dropped) SafeNames(string server, IEnumerable<McpClientTool> tools)
    {
        ArgumentNullException.ThrowIfNull(server);
        ArgumentNullException.ThrowIfNull(tools);
        var longest = 64 - server.Length - 1;
        var kept = new List<McpClientTool>();
        var dropped = new List<string>();
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var tool in tools)
        {
            var safe = new string([.. tool.Name.Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_')]);
            safe = safe.Length > longest ? safe[..longest] : safe;
            if (safe.Length == 0 || !names.Add(safe))
            {
                dropped.Add(tool.Name);
                continue;
            }

            kept.Add(safe == tool.Name ? tool : tool.WithName(safe));
        }

        return (kept, dropped);
    }

    /// <summary>The turn's caller, for servers that keep data per user or session.</summary>
    public static JsonObject Caller(string userId, Guid sessionId) =>
        new() { ["workers/userId"] = userId, ["workers/sessionId"] = sessionId.ToString("D") };

    protected override async ValueTask<object?> InvokeCoreAsync(AIFunctionArguments arguments, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        CallToolResult result;
        try
        {
            result = await tool.CallAsync(arguments, progress: null, new RequestOptions { Meta = caller?.DeepClone().AsObject() }, deadline.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The client has told the server to cancel the call; the model hears why there is no result.
            throw new ToolCallException(ToolStatus.Timeout, $"The tool did not answer within {timeout.TotalSeconds:0.#} s.");
        }
        catch (McpException e)
        {
            throw new ToolCallException(ToolStatus.Error, $"The tool failed: {e.Message}");
        }
        catch (Exception e) when (e is IOException or HttpRequestException or ObjectDisposedException or InvalidOperationException)
        {
            throw new ToolCallException(ToolStatus.Error, "The tool's server could not be reached.");
        }

        var text = string.Join("\n", result.Content.OfType<TextContentBlock>().Select(b => b.Text));
        return result.IsError == true ? throw new ToolCallException(ToolStatus.Error, $"The tool reported an error: {text}") : text;
    }
}
