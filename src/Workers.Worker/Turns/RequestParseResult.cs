using Workers.Contracts;

namespace Workers.Worker.Turns;

/// <summary>A parsed request, or why it was refused and whatever of its identity could still be read.</summary>
public sealed record RequestParseResult(
    ChatRequested? Request, string? Code, string? Reason, Guid? SessionId, Guid? RequestId, string? UserId)
{
    public static RequestParseResult Ok(ChatRequested request) =>
        new(request, null, null, request.SessionId, request.RequestId, request.UserId);

    public static RequestParseResult Fail(
        string code, string reason, Guid? sessionId = null, Guid? requestId = null, string? userId = null) =>
        new(null, code, reason, sessionId, requestId, userId);
}
