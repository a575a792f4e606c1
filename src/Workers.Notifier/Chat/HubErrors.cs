using Microsoft.AspNetCore.SignalR;
using Workers.Core.Sessions;

namespace Workers.Notifier.Chat;

/// <summary>Turns a refusal into <c>HubException("code: message")</c>; anything else stays a generic error with no detail.</summary>
public sealed class HubErrors(NotifierMetrics metrics, ILogger<HubErrors> logger) : IHubFilter
{
    public async ValueTask<object?> InvokeMethodAsync(HubInvocationContext invocationContext, Func<HubInvocationContext, ValueTask<object?>> next)
    {
        ArgumentNullException.ThrowIfNull(invocationContext);
        ArgumentNullException.ThrowIfNull(next);
        try
        {
            return await next(invocationContext);
        }
        catch (ChatErrorException e)
        {
            logger.LogInformation("Hub {Method} refused for connection {ConnectionId}: {Code}",
                invocationContext.HubMethodName, invocationContext.Context.ConnectionId, e.Code);
            metrics.Refused(e.Code);
            throw new HubException($"{e.Code}: {e.Message}");
        }
    }
}
