using Microsoft.AspNetCore.Http.HttpResults;
using Workers.Contracts;
using Workers.Core.Sessions;
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

        api.MapPost("/", async (TitleBody? body, HttpContext http, SessionLifecycle sessions) =>
        {
            var session = await sessions.CreateAsync(http.User.UserId(), body?.Title, http.RequestAborted);
            return Results.Created($"/api/sessions/{session.Id}", session);
        });
        api.MapGet("/", (HttpContext http, SessionLifecycle sessions) => sessions.ListAsync(http.User.UserId(), http.RequestAborted));
        api.MapGet("/{id}", (string id, HttpContext http, SessionLifecycle sessions) =>
            sessions.GetAsync(http.User.UserId(), SessionIds.Parse(id), http.RequestAborted));
        api.MapGet("/{id}/turns", async (string id, long? afterSeq, int? limit, HttpContext http, SessionLifecycle sessions) =>
        {
            var turns = await sessions.HistoryAsync(http.User.UserId(), SessionIds.Parse(id), afterSeq ?? 0, limit ?? 100, http.RequestAborted);
            return turns.Select(t => new
            {
                t.TurnNo, t.RequestId, t.UserText, t.ReplyText, t.Status, t.ErrorCode, t.FirstSeq, t.LastSeq, t.StartedAt,
                t.CompletedAt, t.PromptTokens, t.CompletionTokens,
            });
        });
        api.MapPatch("/{id}", (string id, TitleBody body, HttpContext http, SessionLifecycle sessions) =>
            sessions.RenameAsync(http.User.UserId(), SessionIds.Parse(id), body.Title, http.RequestAborted));
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
        api.MapPost("/{id}/cancel", async (string id, CancelBody body, HttpContext http, MessageSender sender) =>
        {
            await sender.CancelAsync(http.User.UserId(), SessionIds.Parse(id), SessionIds.Parse(body.RequestId, "requestId"),
                http.RequestAborted);
            return Results.Accepted();
        });
    }

    public static ProblemHttpResult Problem(string code, string detail) => TypedResults.Problem(detail, statusCode: code switch
    {
        ErrorCodes.SessionNotFound => StatusCodes.Status404NotFound,
        ErrorCodes.TooLarge => StatusCodes.Status413PayloadTooLarge,
        ErrorCodes.RateLimited => StatusCodes.Status429TooManyRequests,
        ErrorCodes.SessionBusy => StatusCodes.Status409Conflict,
        _ => StatusCodes.Status400BadRequest,
    }, title: code, extensions: new Dictionary<string, object?> { ["code"] = code });

    public sealed record TitleBody(string? Title);

    public sealed record MessageBody(string? Text, string? RequestId);

    public sealed record CancelBody(string? RequestId);
}
