using System.IdentityModel.Tokens.Jwt;
using System.Security.Claims;
using System.Text;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using Workers.Contracts;
using Workers.Core.Hosting;

namespace Workers.Notifier.Auth;

public static class AuthRegistration
{
    public const string HubPath = "/hubs/chat";

    /// <summary>The policy of the operator's admin API: a token with <see cref="AuthOptions.AdminRole"/> in
    /// <see cref="AuthOptions.RoleClaim"/>.</summary>
    public const string OperatorPolicy = "operator";

    /// <summary>Where a validated token's user id is kept, whichever claim (<see cref="AuthOptions.UserIdClaim"/>) carried it.</summary>
    public const string UserIdClaimType = "workers:user_id";

    /// <summary>An identity provider's tokens are signed with its own (asymmetric) keys: an HMAC token is refused,
    /// so the provider's public key can never be used as a shared secret.</summary>
    private static readonly string[] AsymmetricAlgorithms =
    [
        SecurityAlgorithms.RsaSha256, SecurityAlgorithms.RsaSha384, SecurityAlgorithms.RsaSha512,
        SecurityAlgorithms.RsaSsaPssSha256, SecurityAlgorithms.RsaSsaPssSha384, SecurityAlgorithms.RsaSsaPssSha512,
        SecurityAlgorithms.EcdsaSha256, SecurityAlgorithms.EcdsaSha384, SecurityAlgorithms.EcdsaSha512,
    ];

    public static void AddNotifierAuth(this WebApplicationBuilder builder)
    {
        builder.Services.AddCheckedOptions<AuthOptions>(AuthOptions.SectionName);
        DevelopmentSecrets.RefuseOutsideDevelopment(builder, "Auth:SigningKey");
        builder.Services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer();
        builder.Services.AddOptions<JwtBearerOptions>(JwtBearerDefaults.AuthenticationScheme)
            .Configure<IOptions<AuthOptions>>((jwt, auth) =>
            {
                var options = auth.Value;
                jwt.MapInboundClaims = false;
                if (options.UsesAuthority)
                {
                    // Issuer and signing keys from the provider's discovery document and JWKS (refreshed by the handler).
                    jwt.Authority = options.Authority;
                    jwt.Audience = options.Audience;
                    jwt.RequireHttpsMetadata = options.RequireHttpsMetadata;
                    jwt.TokenValidationParameters = new TokenValidationParameters
                    {
                        ValidAudience = options.Audience,
                        ValidAlgorithms = AsymmetricAlgorithms,
                        NameClaimType = options.UserIdClaim,
                        ClockSkew = TimeSpan.FromSeconds(30),
                    };
                }
                else
                {
                    jwt.TokenValidationParameters = Validation(options);
                }

                jwt.Events = new JwtBearerEvents
                {
                    // The user id is read once, here, from the configured claim: a token without one is refused.
                    OnTokenValidated = context =>
                    {
                        if (context.Principal?.FindFirstValue(options.UserIdClaim) is not { Length: > 0 and <= ChatLimits.MaxUserIdLength } userId
                            || context.Principal.Identity is not ClaimsIdentity identity)
                        {
                            context.Fail($"the token has no usable '{options.UserIdClaim}' claim (1 to {ChatLimits.MaxUserIdLength} characters)");
                            return Task.CompletedTask;
                        }

                        identity.AddClaim(new Claim(UserIdClaimType, userId));
                        return Task.CompletedTask;
                    },
                    // Browsers cannot set headers on a websocket, so the hub alone also takes the token from the
                    // query string; every other path requires the Authorization header.
                    OnMessageReceived = context =>
                    {
                        if (context.HttpContext.Request.Path.StartsWithSegments(HubPath)
                            && context.Request.Query["access_token"] is { Count: 1 } token)
                        {
                            context.Token = token;
                        }

                        return Task.CompletedTask;
                    },
                };
            });
        builder.Services.AddAuthorization();
        builder.Services.AddOptions<AuthorizationOptions>().Configure<IOptions<AuthOptions>>((authorization, auth) =>
            authorization.AddPolicy(OperatorPolicy, policy => policy.RequireClaim(auth.Value.RoleClaim, auth.Value.AdminRole)));
        builder.Services.AddSingleton<IUserIdProvider, SubjectUserIdProvider>();
    }

    public static TokenValidationParameters Validation(AuthOptions auth) => new()
    {
        ValidIssuer = auth.Issuer,
        ValidAudience = auth.Audience,
        IssuerSigningKey = new SymmetricSecurityKey(Encoding.UTF8.GetBytes(auth.SigningKey)),
        ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
        NameClaimType = JwtRegisteredClaimNames.Sub,
        ClockSkew = TimeSpan.FromSeconds(5),
    };

    /// <summary>The user id of a request or connection: from the validated token, never anything the client sends.</summary>
    public static string UserId(this ClaimsPrincipal user) =>
        user.FindFirstValue(UserIdClaimType) is { Length: > 0 and <= ChatLimits.MaxUserIdLength } id
            ? id
            : throw new InvalidOperationException("authenticated principal without a usable subject");

    /// <summary><c>POST /dev/token {"userId": "alice"}</c> (<c>"admin": true</c> adds the admin role): mapped only in Development with the shared key, for the
    /// demo page, and only for callers on this machine: a token for any user id is the keys to every chat.</summary>
    public static void MapDevTokens(this WebApplication app)
    {
        if (!app.Environment.IsDevelopment() || app.Services.GetRequiredService<IOptions<AuthOptions>>().Value.UsesAuthority)
        {
            return;
        }

        app.MapPost("/dev/token", (DevTokenRequest request, HttpContext http, IOptions<AuthOptions> auth) =>
        {
            if (http.Connection.RemoteIpAddress is not { } caller || !System.Net.IPAddress.IsLoopback(caller))
            {
                return Results.Problem("development tokens are issued to loopback callers only", statusCode: 403,
                    extensions: new Dictionary<string, object?> { ["code"] = "forbidden" });
            }

            if (string.IsNullOrWhiteSpace(request.UserId) || request.UserId.Length > ChatLimits.MaxUserIdLength)
            {
                return Results.Problem("userId must be 1 to 128 characters", statusCode: 400,
                    extensions: new Dictionary<string, object?> { ["code"] = ErrorCodes.InvalidRequest });
            }

            var roles = request.Admin ? new[] { auth.Value.AdminRole } : [];
            return Results.Ok(new { token = IssueToken(auth.Value, request.UserId.Trim(), auth.Value.DevTokenLifetime, roles) });
        });
    }

    public static string IssueToken(AuthOptions auth, string userId, TimeSpan lifetime, IEnumerable<string>? roles = null)
    {
        ArgumentNullException.ThrowIfNull(auth);
        Claim[] claims = [new(JwtRegisteredClaimNames.Sub, userId), .. (roles ?? []).Select(role => new Claim(auth.RoleClaim, role))];
        var credentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(auth.SigningKey)),
            SecurityAlgorithms.HmacSha256);
        var now = DateTime.UtcNow;
        var token = new JwtSecurityToken(auth.Issuer, auth.Audience, claims,
            notBefore: now.AddSeconds(-1), expires: now + lifetime, signingCredentials: credentials);
        return new JwtSecurityTokenHandler().WriteToken(token);
    }

    private sealed class SubjectUserIdProvider : IUserIdProvider
    {
        public string? GetUserId(HubConnectionContext connection) => connection.User.FindFirstValue(UserIdClaimType);
    }
}
