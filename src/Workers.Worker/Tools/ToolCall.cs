using System.Text.Json;
using System.Text.Json.Serialization;

namespace Workers.Worker.Tools;

/// <summary>
/// One tool call of a turn as the model saw it: kept with the turn (<c>workers.turns.tool_calls</c>, under its row-level
/// security) and replayed into later turns' prompts as an assistant call and a tool result. Our own rows, not Semantic
/// Kernel's history JSON: reloading that re-sends results double-encoded.
/// </summary>
/// <param name="Id">The provider's call id, pairing the call with its result.</param>
/// <param name="Plugin">The plugin (<c>notes</c>, or the MCP server's name).</param>
/// <param name="Function">The function within it.</param>
/// <param name="Arguments">The arguments the model gave, as a JSON object.</param>
/// <param name="Result">The result the model got, already capped (an error's or a timeout's text included).</param>
/// <param name="Status"><see cref="ToolStatus.Ok"/>, <see cref="ToolStatus.Error"/> or <see cref="ToolStatus.Timeout"/>.</param>
public sealed record ToolCall(string Id, string Plugin, string Function, string Arguments, string Result, string Status)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>The name the model and the events use: <c>plugin.function</c>.</summary>
    public string Tool => $"{Plugin}.{Function}";

    public static string? ListToJson(IReadOnlyCollection<ToolCall> calls) =>
        calls is null || calls.Count == 0 ? null : JsonSerializer.Serialize(calls, Json);

    public static IReadOnlyList<ToolCall> ListFromJson(string json) => JsonSerializer.Deserialize<List<ToolCall>>(json, Json) ?? [];
}

/// <summary>The states a tool call reports in <c>ToolInvoked</c>.</summary>
public static class ToolStatus
{
    public const string Started = "started";
    public const string Ok = "ok";
    public const string Error = "error";
    public const string Timeout = "timeout";

    /// <summary>The turn was cancelled, or ran out of time, while the call ran; the call is not kept.</summary>
    public const string Cancelled = "cancelled";
}

/// <summary>A tool call that ended without a result: its text goes to the model as the result, its status to the
/// events. Thrown by the MCP tool wrapper, caught by <see cref="ToolEventFilter"/>.</summary>
public sealed class ToolCallException(string status, string message) : Exception(message)
{
    public string Status { get; } = status;
}
