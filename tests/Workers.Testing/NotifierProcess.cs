using System.Net.Http.Headers;
using Workers.Notifier.Auth;

namespace Workers.Testing;

/// <summary>A running notifier and how to reach it.</summary>
public sealed record NotifierProcess(HostProcess Process, Uri BaseAddress)
{
    /// <summary>A bearer token the notifiers of a <see cref="WorkersSystem"/> accept (or, with another key, refuse).</summary>
    public static string Token(string userId, TimeSpan? lifetime = null, string key = WorkersSystem.SigningKey) =>
        AuthRegistration.IssueToken(new AuthOptions { SigningKey = key }, userId, lifetime ?? TimeSpan.FromHours(1));

    /// <summary>A token with the admin role (<see cref="AuthOptions.AdminRole"/>): the operator's admin API.</summary>
    public static string AdminToken(string userId) =>
        AuthRegistration.IssueToken(new AuthOptions { SigningKey = WorkersSystem.SigningKey }, userId, TimeSpan.FromHours(1),
            [new AuthOptions().AdminRole]);

    public HttpClient Http(string? userId = null, string? token = null)
    {
        var http = new HttpClient { BaseAddress = BaseAddress };
        if ((token ?? (userId is null ? null : Token(userId))) is { } bearer)
        {
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        return http;
    }
}
