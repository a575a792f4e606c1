using Microsoft.Extensions.Options;
using Workers.Notifier.Auth;
using Workers.Notifier.Sending;

namespace Workers.Notifier.Chat;

/// <summary>
/// CORS does not cover websockets, so a page from any site could open the hub with a user's token. A browser always
/// sends Origin: only the notifier's own origin and the configured ones may open the hub. Clients without Origin
/// (services, tests) are not browsers and pass.
/// </summary>
public static class OriginCheck
{
    public static void UseHubOriginCheck(this WebApplication app) => app.Use(async (context, next) =>
    {
        var origin = context.Request.Headers.Origin.ToString();
        if (context.Request.Path.StartsWithSegments(AuthRegistration.HubPath) && origin.Length > 0)
        {
            var allowed = context.RequestServices.GetRequiredService<IOptions<LimitOptions>>().Value.AllowedOrigins;
            var own = $"{context.Request.Scheme}://{context.Request.Host}";
            if (!string.Equals(origin, own, StringComparison.OrdinalIgnoreCase)
                && !allowed.Contains(origin, StringComparer.OrdinalIgnoreCase))
            {
                context.Response.StatusCode = StatusCodes.Status403Forbidden;
                await context.Response.WriteAsync($"origin {origin} is not allowed");
                return;
            }
        }

        await next();
    });
}
