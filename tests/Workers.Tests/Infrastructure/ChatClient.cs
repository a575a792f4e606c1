using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR.Client;

namespace Workers.Tests.Infrastructure;

/// <summary>A browser's view of the hub, through the official .NET SignalR client: every event it receives is kept.</summary>
public sealed class ChatClient : IAsyncDisposable
{
    private readonly ConcurrentQueue<(JsonElement Event, DateTime ReceivedAt)> _events = new();

    private ChatClient(HubConnection connection, string userId)
    {
        Connection = connection;
        UserId = userId;
        connection.On<JsonElement>("event", e => _events.Enqueue((e, DateTime.UtcNow)));
    }

    public HubConnection Connection { get; }

    public string UserId { get; }

    /// <summary>Events that came through the <c>event</c> callback, in arrival order.</summary>
    public IReadOnlyList<JsonElement> Live => [.. _events.Select(e => e.Event)];

    /// <summary>The longest an event took from the worker's publish (its <c>sentAt</c>) to this client.</summary>
    public TimeSpan LongestDelivery => _events
        .Where(e => e.Event.TryGetProperty("sentAt", out _))
        .Select(e => e.ReceivedAt - e.Event.GetProperty("sentAt").GetDateTime().ToUniversalTime())
        .DefaultIfEmpty(TimeSpan.Zero).Max();

    public static async Task<ChatClient> ConnectAsync(NotifierProcess notifier, string userId, string token)
    {
        var connection = new HubConnectionBuilder()
            .WithUrl(new Uri(notifier.BaseAddress, "/hubs/chat"), o =>
            {
                o.AccessTokenProvider = () => Task.FromResult<string?>(token);
                o.Transports = Microsoft.AspNetCore.Http.Connections.HttpTransportType.WebSockets;
                o.SkipNegotiation = true;
            })
            .Build();
        var client = new ChatClient(connection, userId);
        await connection.StartAsync();
        return client;
    }

    public async Task<Guid> CreateSessionAsync(string title = "test") =>
        (await Connection.InvokeAsync<JsonElement>("CreateSession", title)).GetProperty("id").GetGuid();

    public Task<List<JsonElement>> SubscribeAsync(Guid sessionId, long afterSeq = 0) =>
        Connection.InvokeAsync<List<JsonElement>>("Subscribe", sessionId.ToString(), afterSeq);

    public Task<Guid> SendAsync(Guid sessionId, string text) =>
        Connection.InvokeAsync<Guid>("SendMessage", sessionId.ToString(), text, null);

    public async Task WaitForAsync(Func<IReadOnlyList<JsonElement>, bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition(Live))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{UserId}: timed out waiting for {what}; {_events.Count} events");
            }

            await Task.Delay(25);
        }
    }

    public static bool Is(JsonElement e, string type, Guid requestId) =>
        e.GetProperty("type").GetString() == type && e.GetProperty("requestId").GetGuid() == requestId;

    public async ValueTask DisposeAsync() => await Connection.DisposeAsync();
}
