using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Client;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Notifier;

/// <summary>Only a valid token gets in, and a user reaches only their own sessions.</summary>
[Collection("worker pools")]
public sealed class Authentication_and_authorization(ServicesFixture services)
{
    [Fact]
    public async Task Requests_without_a_valid_token_are_refused()
    {
        var (pool, notifier) = await NotifierSystem.StartAsync(services);
        await using var _ = pool;
        var tokens = new Dictionary<string, string?>
        {
            ["none"] = null,
            ["bad signature"] = NotifierProcess.Token("alice", key: "another-key-that-is-long-enough-0123456789"),
            ["expired"] = NotifierSystem.ExpiredToken("alice"),
            ["garbage"] = "not.a.token",
        };
        foreach (var (what, token) in tokens)
        {
            using var http = notifier.Http(token: token);
            Assert.True((await http.GetAsync("/api/sessions")).StatusCode == HttpStatusCode.Unauthorized, what);
            if (token is not null)
            {
                await Assert.ThrowsAnyAsync<Exception>(() => ChatClient.ConnectAsync(notifier, "alice", token));
            }
        }

        // The query-string token is for the hub only.
        using var anonymous = notifier.Http();
        Assert.Equal(HttpStatusCode.Unauthorized,
            (await anonymous.GetAsync($"/api/sessions?access_token={NotifierProcess.Token("alice")}")).StatusCode);
        using var alice = notifier.Http("alice");
        Assert.Equal(HttpStatusCode.OK, (await alice.GetAsync("/api/sessions")).StatusCode);
    }

    [Fact]
    public async Task Another_users_session_and_a_missing_one_are_the_same_session_not_found()
    {
        var (pool, notifier) = await NotifierSystem.StartAsync(services);
        await using var _ = pool;
        await using var alice = await notifier.ConnectAsync("alice");
        var alicesSession = await alice.CreateSessionAsync("alice's");
        await using var bob = await notifier.ConnectAsync("bob");
        using var bobHttp = notifier.Http("bob");

        foreach (var id in new[] { alicesSession, Guid.NewGuid() })
        {
            foreach (var call in new Func<Task>[]
                     {
                         () => bob.SubscribeAsync(id),
                         () => bob.SendAsync(id, "let me in"),
                         () => bob.Connection.InvokeAsync("CancelTurn", id.ToString(), Guid.NewGuid().ToString()),
                     })
            {
                var error = await Assert.ThrowsAsync<HubException>(call);
                Assert.EndsWith("HubException: session_not_found: no such session", error.Message, StringComparison.Ordinal);
            }

            foreach (var request in new[]
                     {
                         new HttpRequestMessage(HttpMethod.Get, $"/api/sessions/{id}/turns"),
                         new HttpRequestMessage(HttpMethod.Delete, $"/api/sessions/{id}"),
                         new HttpRequestMessage(HttpMethod.Patch, $"/api/sessions/{id}") { Content = JsonContent.Create(new { title = "mine" }) },
                         new HttpRequestMessage(HttpMethod.Post, $"/api/sessions/{id}/messages") { Content = JsonContent.Create(new { text = "hi" }) },
                     })
            {
                var response = await bobHttp.SendAsync(request);
                Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
                var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
                Assert.Equal("session_not_found", problem.GetProperty("code").GetString());
                Assert.Equal("no such session", problem.GetProperty("detail").GetString());
            }
        }

        Assert.Empty(await bob.Connection.InvokeAsync<List<JsonElement>>("ListSessions"));
        using var aliceHttp = notifier.Http("alice");
        var sessions = await aliceHttp.GetFromJsonAsync<List<JsonElement>>("/api/sessions");
        Assert.Equal("alice's", Assert.Single(sessions!).GetProperty("title").GetString());
        Assert.Equal(0L, await pool.TurnCountAsync());
    }

    [Theory]
    [InlineData("'; DROP TABLE sessions; --")]
    [InlineData("")]
    [InlineData("not-a-uuid")]
    public async Task Ids_that_are_not_uuids_are_refused_as_invalid_request_before_any_query(string id)
    {
        var (pool, notifier) = await NotifierSystem.StartAsync(services);
        await using var _ = pool;
        await using var alice = await notifier.ConnectAsync("alice");
        foreach (var bad in new[] { id, new string('7', 10_000) })
        {
            var error = await Assert.ThrowsAsync<HubException>(() => alice.Connection.InvokeAsync("Subscribe", bad, 0L));
            Assert.Contains("HubException: invalid_request: sessionId must be a UUID", error.Message, StringComparison.Ordinal);
        }

        using var http = notifier.Http("alice");
        var response = await http.GetAsync($"/api/sessions/{Uri.EscapeDataString(id.Length == 0 ? " " : id)}/turns");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("invalid_request", (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("code").GetString());
        Assert.Equal(1L, await pool.Db.ScalarAsync<long>("SELECT count(*) FROM pg_tables WHERE schemaname = 'workers' AND tablename = 'sessions'"));
    }

    [Fact]
    public async Task The_development_token_endpoint_does_not_exist_outside_Development()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        var production = await pool.StartNotifierAsync(new Dictionary<string, string> { ["ASPNETCORE_ENVIRONMENT"] = "Production" });
        using var http = production.Http();
        Assert.Equal(HttpStatusCode.NotFound, (await http.PostAsJsonAsync("/dev/token", new { userId = "alice" })).StatusCode);

        var development = await pool.StartNotifierAsync();
        using var dev = development.Http();
        var issued = await (await dev.PostAsJsonAsync("/dev/token", new { userId = "alice" })).Content.ReadFromJsonAsync<JsonElement>();
        using var authenticated = development.Http(token: issued.GetProperty("token").GetString());
        Assert.Equal(HttpStatusCode.OK, (await authenticated.GetAsync("/api/sessions")).StatusCode);
    }

    [Fact]
    public async Task An_open_connection_is_closed_when_its_token_expires()
    {
        var (pool, notifier) = await NotifierSystem.StartAsync(services);
        await using var _ = pool;
        await using var client = await notifier.ConnectAsync("alice", NotifierProcess.Token("alice", TimeSpan.FromSeconds(3)));
        var closed = new TaskCompletionSource();
        client.Connection.Closed += _ =>
        {
            closed.TrySetResult();
            return Task.CompletedTask;
        };
        await client.CreateSessionAsync();
        await closed.Task.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(Microsoft.AspNetCore.SignalR.Client.HubConnectionState.Disconnected, client.Connection.State);
    }
}
