using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.SignalR;
using Workers.Core.Sessions;
using Workers.Notifier.Auth;
using Workers.Notifier.Sending;
using Workers.Notifier.Sessions;

namespace Workers.Notifier.Chat;

/// <summary>
/// The browser's door. The user is always the token's subject; every session operation is checked in PostgreSQL as
/// that user, and another user's session is indistinguishable from a missing one. Errors reach the client as
/// <see cref="HubException"/>s whose message starts with the error code (see <see cref="HubErrors"/>).
/// </summary>
[Authorize]
public sealed class ChatHub(
    SessionLifecycle sessions, SessionSubscriptions subscriptions, SessionReplay replay, MessageSender sender) : Hub
{
    private string UserId => Context.User!.UserId();

    public Task<SessionSummary> CreateSession(string? title) => sessions.CreateAsync(UserId, title, Context.ConnectionAborted);

    /// <summary>Sets a session's system prompt ('' for the deployment's) and temperature; null leaves one as it is.</summary>
    public Task<SessionSummary> ConfigureSession(string sessionId, string? systemPrompt, double? temperature) =>
        sessions.UpdateAsync(UserId, SessionIds.Parse(sessionId), null, Context.ConnectionAborted, systemPrompt, temperature);

    /// <summary>Sets a session's model by name ('' or null for the deployment's default). A name the workers do not have
    /// fails the session's next turn with <c>invalid_request</c>, naming the ones there are.</summary>
    public Task<SessionSummary> ChooseModel(string sessionId, string? model) =>
        sessions.UpdateAsync(UserId, SessionIds.Parse(sessionId), null, Context.ConnectionAborted, model: model ?? "");

    /// <summary>The tool servers whose tools the session's turns offer the model (an empty list: only the built-in notes).</summary>
    public Task<SessionSummary> ChooseTools(string sessionId, string[]? tools) =>
        sessions.UpdateAsync(UserId, SessionIds.Parse(sessionId), null, Context.ConnectionAborted, tools: tools ?? []);

    public Task<IReadOnlyList<SessionSummary>> ListSessions() => sessions.ListAsync(UserId, Context.ConnectionAborted);

    /// <summary>Returns every event after <paramref name="afterSeq"/>; live events follow through <c>event</c>.</summary>
    public async Task<IReadOnlyList<ClientEvent>> Subscribe(string sessionId, long afterSeq)
    {
        var id = SessionIds.Parse(sessionId);
        await sessions.GetAsync(UserId, id, Context.ConnectionAborted);
        // Registered before the history is read, so nothing published meanwhile falls between the two.
        var subscriber = await subscriptions.BeginAsync(Context.ConnectionId, UserId, id, Math.Max(0, afterSeq), Context.ConnectionAborted);
        try
        {
            var events = await replay.AfterAsync(UserId, id, Math.Max(0, afterSeq), Context.ConnectionAborted);
            return SessionSubscriptions.GoLive(subscriber, events);
        }
        catch
        {
            subscriptions.Remove(Context.ConnectionId, id);
            throw;
        }
    }

    public void Unsubscribe(string sessionId) => subscriptions.Remove(Context.ConnectionId, SessionIds.Parse(sessionId));

    public Task<Guid> SendMessage(string sessionId, string text, string? requestId) =>
        sender.SendAsync(UserId, SessionIds.Parse(sessionId), text, SessionIds.ParseOptional(requestId, "requestId"),
            Context.ConnectionAborted);

    /// <summary>A new reply to the session's last message, replacing its last turn (kept as a superseded version).</summary>
    public Task<Guid> RegenerateLast(string sessionId, string? requestId) =>
        sender.ReplaceLastAsync(UserId, SessionIds.Parse(sessionId), null, SessionIds.ParseOptional(requestId, "requestId"),
            Context.ConnectionAborted);

    /// <summary>The session's last message changed to <paramref name="text"/> and answered again, replacing its last turn.</summary>
    public Task<Guid> EditLast(string sessionId, string text, string? requestId) =>
        sender.ReplaceLastAsync(UserId, SessionIds.Parse(sessionId), text ?? "", SessionIds.ParseOptional(requestId, "requestId"),
            Context.ConnectionAborted);

    public Task CancelTurn(string sessionId, string requestId) =>
        sender.CancelAsync(UserId, SessionIds.Parse(sessionId), SessionIds.Parse(requestId, "requestId"), Context.ConnectionAborted);

    public override Task OnConnectedAsync()
    {
        subscriptions.Connect(Context);
        return base.OnConnectedAsync();
    }

    public override Task OnDisconnectedAsync(Exception? exception)
    {
        subscriptions.RemoveConnection(Context.ConnectionId);
        return base.OnDisconnectedAsync(exception);
    }
}
