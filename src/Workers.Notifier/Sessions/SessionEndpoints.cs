using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Workers.Contracts;
using Microsoft.Extensions.Options;
using Workers.Core.Sessions;
using Workers.Core.Usage;
using Workers.Notifier.Auth;
using Workers.Notifier.Sending;

namespace Workers.Notifier.Sessions;

/// <summary>The REST side of the notifier; the same checks as the hub, errors as RFC 7807 problem details with a code.</summary>
public static class SessionEndpoints
{
    public static void MapSessionEndpoints(this WebApplication app)
    {
        var api = app.MapGroup("/api/sessions").RequireAuthorization().AddEndpointFilter(async (context, next) =>
        {
            try
            {
                return await next(context);
            }
            catch (ChatErrorException e)
            {
                return Problem(e.Code, e.Message);
            }
        });

        api.MapPost("/", async (SessionBody? body, HttpContext http, SessionLifecycle sessions) =>
        {
            var session = await sessions.CreateAsync(http.User.UserId(), body?.Title, http.RequestAborted, body?.SystemPrompt, body?.Temperature,
                body?.Model, body?.Tools);
            return Results.Created($"/api/sessions/{session.Id}", session);
        });
        api.MapGet("/", (HttpContext http, SessionLifecycle sessions) => sessions.ListAsync(http.User.UserId(), http.RequestAborted));
        api.MapGet("/{id}", (string id, HttpContext http, SessionLifecycle sessions) =>
            sessions.GetAsync(http.User.UserId(), SessionIds.Parse(id), http.RequestAborted));
        api.MapGet("/{id}/turns", async (string id, long? afterSeq, int? limit, bool? superseded, HttpContext http, SessionLifecycle sessions) =>
        {
            var turns = await sessions.HistoryAsync(http.User.UserId(), SessionIds.Parse(id), afterSeq ?? 0, limit ?? 100, http.RequestAborted,
                superseded ?? false);
            return turns.Select(t => new
            {
                t.TurnNo, t.RequestId, t.UserText, t.ReplyText, t.Status, t.ErrorCode, t.FirstSeq, t.LastSeq, t.StartedAt,
                t.CompletedAt, t.PromptTokens, t.CompletionTokens, t.SupersededBy,
                ToolCalls = t.ToolCalls is null ? (JsonElement?)null : JsonSerializer.Deserialize<JsonElement>(t.ToolCalls),
            });
        });
        api.MapPatch("/{id}", (string id, SessionBody body, HttpContext http, SessionLifecycle sessions) =>
            sessions.UpdateAsync(http.User.UserId(), SessionIds.Parse(id), body.Title, http.RequestAborted, body.SystemPrompt, body.Temperature,
                body.Model, body.Tools));
        api.MapDelete("/{id}", async (string id, HttpContext http, SessionLifecycle sessions) =>
        {
            await sessions.DeleteAsync(http.User.UserId(), SessionIds.Parse(id), http.RequestAborted);
            return Results.NoContent();
        });
        api.MapPost("/{id}/messages", async (string id, MessageBody body, HttpContext http, MessageSender sender) =>
        {
            var requestId = await sender.SendAsync(http.User.UserId(), SessionIds.Parse(id), body.Text,
                SessionIds.ParseOptional(body.RequestId, "requestId"), http.RequestAborted);
            return Results.Accepted(value: new { requestId });
        });
        // Regenerate and edit: a new version of the session's last turn, in the session's order like any message.
        api.MapPost("/{id}/regenerate", async (string id, ReplaceBody? body, HttpContext http, MessageSender sender) =>
        {
            var requestId = await sender.ReplaceLastAsync(http.User.UserId(), SessionIds.Parse(id), null,
                SessionIds.ParseOptional(body?.RequestId, "requestId"), http.RequestAborted);
            return Results.Accepted(value: new { requestId });
        });
        api.MapPost("/{id}/edit", async (string id, MessageBody body, HttpContext http, MessageSender sender) =>
        {
            var requestId = await sender.ReplaceLastAsync(http.User.UserId(), SessionIds.Parse(id), body.Text ?? "",
                SessionIds.ParseOptional(body.RequestId, "requestId"), http.RequestAborted);
            return Results.Accepted(value: new { requestId });
        });
        api.MapPost("/{id}/cancel", async (string id, CancelBody body, HttpContext http, MessageSender sender) =>
        {
            await sender.CancelAsync(http.User.UserId(), SessionIds.Parse(id), SessionIds.Parse(body.RequestId, "requestId"),
                http.RequestAborted);
            return Results.Accepted();
        });

        app.MapGet("/api/usage", async (HttpContext http, SessionLifecycle sessions, IOptions<UsageOptions> budgets) =>
        {
            var (today, month) = await sessions.UsageAsync(http.User.UserId(), http.RequestAborted);
            return new UsageReport(today, month, UsageLimits.Of(budgets.Value));
        }).RequireAuthorization();
    }

    /// <summary>
    /// A body that is not JSON or not of the expected shape, and a parameter of the wrong type, fail while binding, before
    /// the endpoint filter above runs, and minimal APIs answer them with an empty 400; a body not declared as JSON is turned
    /// away by routing with an empty 415. Here they get a problem like every other refusal: <c>invalid_request</c>, or
    /// <c>too_large</c> for a body over the server's limit (binding throws: <see cref="RouteHandlerOptions.ThrowOnBadRequest"/>
    /// is set in AddNotifier).
    /// </summary>
    public static void UseProblemsForMalformedRequests(this WebApplication app) => app.Use(async (context, next) =>
    {
        int status;
        try
        {
            await next();
            status = context.Response.StatusCode;
            if (status != StatusCodes.Status415UnsupportedMediaType || context.Response.HasStarted)
            {
                return;
            }
        }
        catch (BadHttpRequestException e) when (!context.Response.HasStarted)
        {
            status = e.StatusCode;
        }

        // In the notifier's own words: the exception's message can quote the value sent.
        var (code, detail) = status switch
        {
            StatusCodes.Status413PayloadTooLarge => (ErrorCodes.TooLarge, "the body is too large"),
            StatusCodes.Status415UnsupportedMediaType =>
                (ErrorCodes.InvalidRequest, "the body must be JSON (Content-Type: application/json)"),
            _ => (ErrorCodes.InvalidRequest, "the body is not JSON of the documented shape, or a parameter is not of its type"),
        };
        await Problem(code, detail, status).ExecuteAsync(context);
    });

    public static ProblemHttpResult Problem(string code, string detail, int? status = null) => TypedResults.Problem(detail,
        statusCode: status ?? code switch
        {
            ErrorCodes.SessionNotFound => StatusCodes.Status404NotFound,
            ErrorCodes.TooLarge => StatusCodes.Status413PayloadTooLarge,
            ErrorCodes.RateLimited => StatusCodes.Status429TooManyRequests,
            ErrorCodes.Unavailable => StatusCodes.Status503ServiceUnavailable,
            ErrorCodes.SessionBusy => StatusCodes.Status409Conflict,
            _ => StatusCodes.Status400BadRequest,
        }, title: code, extensions: new Dictionary<string, object?> { ["code"] = code });

    /// <summary>A session's fields a client sets; absent (null) ones are left as they are.</summary>
    public sealed record SessionBody(string? Title, string? SystemPrompt, double? Temperature, string? Model = null,
        IReadOnlyList<string>? Tools = null);

    public sealed record MessageBody(string? Text, string? RequestId);

    public sealed record CancelBody(string? RequestId);

    public sealed record ReplaceBody(string? RequestId);
}
