using Workers.Notifier.Auth;

namespace Workers.Tests.Infrastructure;

/// <summary>A running notifier and how to reach it.</summary>
public sealed record NotifierProcess(WorkerProcess Process, Uri BaseAddress)
{
    public static string Token(string userId, TimeSpan? lifetime = null, string key = WorkerPool.SigningKey) =>
        AuthRegistration.IssueToken(new AuthOptions { SigningKey = key }, userId, lifetime ?? TimeSpan.FromHours(1));

    public HttpClient Http(string? userId = null, string? token = null)
    {
        var http = new HttpClient { BaseAddress = BaseAddress };
        if ((token ?? (userId is null ? null : Token(userId))) is { } bearer)
        {
            http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);
        }

        return http;
    }

    public Task<ChatClient> ConnectAsync(string userId, string? token = null) =>
        ChatClient.ConnectAsync(this, userId, token ?? Token(userId));
}
