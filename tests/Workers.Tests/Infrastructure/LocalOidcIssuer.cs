using System.IdentityModel.Tokens.Jwt;
using System.Net;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.IdentityModel.Tokens;

namespace Workers.Tests.Infrastructure;

/// <summary>
/// The smallest OpenID Connect provider a JWT bearer handler can use: a discovery document and a JWKS with one RSA key
/// on a loopback port, and tokens signed with that key (or, to be refused, with another key of the same id).
/// </summary>
public sealed class LocalOidcIssuer : IDisposable
{
    private const string KeyId = "test-key-1";
    private readonly LoopbackHttpServer _server;
    private readonly RSA _key = RSA.Create(2048);
    private readonly RSA _otherKey = RSA.Create(2048);

    private LocalOidcIssuer()
    {
        _server = new LoopbackHttpServer(ServeAsync);
        Authority = _server.Address.ToString().TrimEnd('/');
    }

    public string Authority { get; }

    public static LocalOidcIssuer Start() => new();

    /// <summary>A token for <paramref name="claims"/>, RS256, from this issuer (or signed with a key it never published).</summary>
    public string Token(string audience, IEnumerable<Claim> claims, TimeSpan? lifetime = null, bool foreignKey = false)
    {
        var key = new RsaSecurityKey(foreignKey ? _otherKey : _key) { KeyId = KeyId };
        var now = DateTime.UtcNow;
        var expires = now + (lifetime ?? TimeSpan.FromHours(1));
        var token = new JwtSecurityToken(Authority, audience, claims, notBefore: expires < now ? expires.AddHours(-1) : now.AddSeconds(-1),
            expires: expires, signingCredentials: new SigningCredentials(key, SecurityAlgorithms.RsaSha256));
        return new JwtSecurityTokenHandler().WriteToken(token);
    }

    public void Dispose()
    {
        _server.Dispose();
        _key.Dispose();
        _otherKey.Dispose();
    }

    private async Task ServeAsync(HttpListenerContext context)
    {
        object? document = context.Request.Url?.AbsolutePath switch
        {
            "/.well-known/openid-configuration" => new Dictionary<string, object>
            {
                ["issuer"] = Authority,
                ["jwks_uri"] = $"{Authority}/jwks",
                ["authorization_endpoint"] = $"{Authority}/authorize",
                ["token_endpoint"] = $"{Authority}/token",
                ["response_types_supported"] = new[] { "code" },
                ["subject_types_supported"] = new[] { "public" },
                ["id_token_signing_alg_values_supported"] = new[] { "RS256" },
            },
            "/jwks" => new { keys = new[] { Jwk() } },
            _ => null,
        };
        context.Response.StatusCode = document is null ? 404 : 200;
        if (document is not null)
        {
            context.Response.ContentType = "application/json";
            await JsonSerializer.SerializeAsync(context.Response.OutputStream, document);
        }
    }

    private Dictionary<string, string> Jwk()
    {
        var parameters = _key.ExportParameters(includePrivateParameters: false);
        return new()
        {
            ["kty"] = "RSA", ["use"] = "sig", ["alg"] = "RS256", ["kid"] = KeyId,
            ["n"] = Base64UrlEncoder.Encode(parameters.Modulus), ["e"] = Base64UrlEncoder.Encode(parameters.Exponent),
        };
    }
}
