using Microsoft.SemanticKernel;
using Workers.Worker.Turns;

namespace Workers.Worker.Tools;

/// <summary>Emits <c>ToolInvoked</c> (name and outcome, never arguments or results) for every function the model calls.</summary>
public sealed class ToolEventFilter(TurnReply reply) : IFunctionInvocationFilter
{
    public async Task OnFunctionInvocationAsync(FunctionInvocationContext context, Func<FunctionInvocationContext, Task> next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        var tool = $"{context.Function.PluginName}.{context.Function.Name}";
        try
        {
            await next(context);
        }
        catch (Exception) when (!context.CancellationToken.IsCancellationRequested)
        {
            await reply.ToolAsync(tool, "error");
            throw;
        }

        await reply.ToolAsync(tool, "ok");
    }
}
