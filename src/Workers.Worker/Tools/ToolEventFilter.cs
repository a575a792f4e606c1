using System.Diagnostics;
using System.Text.Json;
using Microsoft.SemanticKernel;
using Workers.Core.Sessions;
using Workers.Worker.Turns;

namespace Workers.Worker.Tools;

/// <summary>
/// Every tool call the model makes, whatever the tool and however it is invoked (Semantic Kernel's automatic function
/// calling for a real model, <c>Kernel.InvokeAsync</c> for the offline one): <c>ToolInvoked</c> when it starts and when it ends (name, call id,
/// status and duration; never arguments or results), its result as text capped at <see cref="ToolOptions.MaxResultChars"/>,
/// a failure or timeout turned into a result the model can read, and the call kept for the turn's commit.
/// </summary>
public sealed class ToolEventFilter(TurnReply reply, int maxResultChars) : IAutoFunctionInvocationFilter, IFunctionInvocationFilter
{
    // The provider's id of the call being invoked: only automatic function calling knows it, and it runs the function
    // (and so the function filter below) inside its own filter.
    private readonly AsyncLocal<string?> _callId = new();
    private int _calls;

    public async Task OnAutoFunctionInvocationAsync(AutoFunctionInvocationContext context, Func<AutoFunctionInvocationContext, Task> next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        _callId.Value = context.ToolCallId;
        await next(context);
    }

    public async Task OnFunctionInvocationAsync(FunctionInvocationContext context, Func<FunctionInvocationContext, Task> next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        var plugin = context.Function.PluginName ?? "";
        var tool = $"{plugin}.{context.Function.Name}";
        var callId = _callId.Value ?? $"call_{Interlocked.Increment(ref _calls)}";
        await reply.ToolAsync(tool, callId, ToolStatus.Started, null);
        var started = Stopwatch.GetTimestamp();
        string status = ToolStatus.Ok, text;
        try
        {
            await next(context);
            text = context.Result.GetValue<object>() switch
            {
                null => "",
                string s => s,
                var other => JsonSerializer.Serialize(other),
            };
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
        {
            // The turn was cancelled (or ran out of time) during the call: its chip must not stay "started". Not kept: a
            // call without a result cannot go into a later prompt.
            await reply.ToolAsync(tool, callId, ToolStatus.Cancelled, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            throw;
        }
        catch (ToolCallException e)
        {
            (status, text) = (e.Status, e.Message);
        }
        catch (Exception e) when (!context.CancellationToken.IsCancellationRequested)
        {
            // Semantic Kernel would hand the model the exception's message; it gets a plain statement instead (a timeout
            // inside the tool, not the turn's, included).
            (status, text) = (ToolStatus.Error, $"The tool failed ({e.GetType().Name}).");
        }

        if (text.Length > maxResultChars)
        {
            text = $"{TextCut.Prefix(text, maxResultChars)}\n[cut: {text.Length - maxResultChars} more characters]";
        }

        // PostgreSQL's text and jsonb hold no NUL character; a tool answering binary content must not fail the commit.
        text = text.Replace('\0', '\uFFFD');
        context.Result = new FunctionResult(context.Function, text);
        reply.Record(new ToolCall(callId, plugin, context.Function.Name, ArgumentsJson(context.Arguments), text, status));
        await reply.ToolAsync(tool, callId, status, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
    }

    private static string ArgumentsJson(KernelArguments? arguments) =>
        JsonSerializer.Serialize(arguments?.ToDictionary(a => a.Key, a => a.Value) ?? []).Replace("\\u0000", "\\uFFFD", StringComparison.Ordinal);
}
