using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Claims;
using System.Text.Json;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Notifier;

/// <summary>
/// With <c>Auth__Authority</c> the notifier takes tokens from an OpenID Connect provider (discovery and JWKS), for its
/// audience, and the user id from the configured claim; every other token is refused. The provider here is a small
/// local issuer the test starts.
/// </summary>
[Collection("worker pools")]
public sealed class Sign_in_with_an_identity_provider(ServicesFixture services)
{
    private const string Audience = "workers-api";

    [Fact]
    public async Task Tokens_of_the_provider_sign_users_in_by_the_configured_claim_and_all_others_are_refused()
    {
        using var issuer = LocalOidcIssuer.Start();
        var (pool, notifier) = await NotifierSystem.StartAsync(services, new Dictionary<string, string> { ["Llm__Offline__Tokens"] = "4" },
            new Dictionary<string, string>
            {
                ["ASPNETCORE_ENVIRONMENT"] = "Production",
                ["Auth__SigningKey"] = "",
                ["Auth__Authority"] = issuer.Authority,
                ["Auth__RequireHttpsMetadata"] = "false",
                ["Auth__Audience"] = Audience,
                ["Auth__UserIdClaim"] = "oid",
            });
        await using var _ = pool;

        // Alice streams a reply over the hub with her provider's token.
        var alice = issuer.Token(Audience, [new Claim("sub", "pairwise-subject"), new Claim("oid", "alice-object-id")]);
        await using var client = await ChatClient.ConnectAsync(notifier, "alice", alice);
        var session = await client.CreateSessionAsync();
        await client.SubscribeAsync(session);
        var request = await client.SendAsync(session, "hello");
        await client.WaitForAsync(e => e.Any(x => ChatClient.Is(x, "TurnCompleted", request)), TimeSpan.FromSeconds(20), "the reply");
        Assert.Equal("alice-object-id",
            await pool.Db.ScalarAsync<string>($"SELECT owner_id FROM workers.sessions WHERE id = '{session}'"));

        // The user is the oid claim: the same subject with another oid is someone else.
        Assert.Equal(HttpStatusCode.OK, await StatusAsync(notifier, alice, $"/api/sessions/{session}"));
        var sameSubjectOtherOid = issuer.Token(Audience, [new Claim("sub", "pairwise-subject"), new Claim("oid", "mallory-object-id")]);
        Assert.Equal(HttpStatusCode.NotFound, await StatusAsync(notifier, sameSubjectOtherOid, $"/api/sessions/{session}"));

        // Refused: another audience, a key the provider never published, no oid, expired, and the shared-key kind of token.
        var refused = new Dictionary<string, string>
        {
            ["another audience"] = issuer.Token("some-other-api", [new Claim("oid", "alice-object-id")]),
            ["a key the provider never published"] = issuer.Token(Audience, [new Claim("oid", "alice-object-id")], foreignKey: true),
            ["no user id claim"] = issuer.Token(Audience, [new Claim("sub", "pairwise-subject")]),
            ["expired"] = issuer.Token(Audience, [new Claim("oid", "alice-object-id")], lifetime: TimeSpan.FromMinutes(-5)),
            ["an HMAC token with the shared key"] = NotifierProcess.Token("alice-object-id"),
        };
        foreach (var (what, token) in refused)
        {
            Assert.True(await StatusAsync(notifier, token, "/api/sessions") == HttpStatusCode.Unauthorized, $"{what} was not refused");
        }

        await Assert.ThrowsAnyAsync<Exception>(async () => await (await ChatClient.ConnectAsync(notifier, "alice", refused["another audience"])).DisposeAsync());
        using var anonymous = notifier.Http();
        Assert.Equal(HttpStatusCode.NotFound, (await anonymous.PostAsJsonAsync("/dev/token", new { userId = "alice" })).StatusCode);
    }

    [Fact]
    public async Task An_authority_that_is_not_https_stops_the_notifier_at_start_with_one_line()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        var settings = new Dictionary<string, string>(pool.Settings)
        {
            ["ASPNETCORE_ENVIRONMENT"] = "Production", ["Urls"] = "http://127.0.0.1:0", ["Auth__Authority"] = "http://idp.example",
        };
        await using var notifier = HostProcess.StartHost("Workers.Notifier", "bad-authority", settings);
        Assert.Equal(2, await notifier.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains(notifier.Log, l => l.StartsWith("configuration error: Auth:Authority must be an https:// URL", StringComparison.Ordinal));
    }

    private static async Task<HttpStatusCode> StatusAsync(NotifierProcess notifier, string token, string path)
    {
        using var http = notifier.Http();
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return (await http.GetAsync(path)).StatusCode;
    }
}
