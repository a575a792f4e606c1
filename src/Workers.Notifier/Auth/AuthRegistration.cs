using System.IdentityModel.Tokens.Jwt;
using System.Security.Claims;
using System.Text;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.SignalR;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;
using Workers.Contracts;
using Workers.Core.Hosting;

namespace Workers.Notifier.Auth;

public static class AuthRegistration
{
    public const string HubPath = "/hubs/chat";

    public static void AddNotifierAuth(this WebApplicationBuilder builder)
    {
        builder.Services.AddCheckedOptions<AuthOptions>(AuthOptions.SectionName);
        DevelopmentSecrets.RefuseOutsideDevelopment(builder, "Auth:SigningKey");
        builder.Services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer();
        builder.Services.AddOptions<JwtBearerOptions>(JwtBearerDefaults.AuthenticationScheme)
            .Configure<IOptions<AuthOptions>>((jwt, auth) =>
            {
                jwt.MapInboundClaims = false;
                jwt.TokenValidationParameters = Validation(auth.Value);
                jwt.Events = new JwtBearerEvents
                {
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

    /// <summary>The user id of a request or connection: the token's subject, never anything the client sends.</summary>
    public static string UserId(this ClaimsPrincipal user) =>
        user.FindFirstValue(JwtRegisteredClaimNames.Sub) is { Length: > 0 and <= ChatLimits.MaxUserIdLength } id
            ? id
            : throw new InvalidOperationException("authenticated principal without a usable subject");

    /// <summary><c>POST /dev/token {"userId": "alice"}</c>: mapped only in Development, for the demo page, and only
    /// for callers on this machine: a token for any user id is the keys to every chat.</summary>
    public static void MapDevTokens(this WebApplication app)
    {
        if (!app.Environment.IsDevelopment())
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

            return Results.Ok(new { token = IssueToken(auth.Value, request.UserId.Trim(), auth.Value.DevTokenLifetime) });
        });
    }

    public static string IssueToken(AuthOptions auth, string userId, TimeSpan lifetime)
    {
        ArgumentNullException.ThrowIfNull(auth);
        var credentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(auth.SigningKey)),
            SecurityAlgorithms.HmacSha256);
        var now = DateTime.UtcNow;
        var token = new JwtSecurityToken(auth.Issuer, auth.Audience, [new Claim(JwtRegisteredClaimNames.Sub, userId)],
            notBefore: now.AddSeconds(-1), expires: now + lifetime, signingCredentials: credentials);
        return new JwtSecurityTokenHandler().WriteToken(token);
    }

    private sealed class SubjectUserIdProvider : IUserIdProvider
    {
        public string? GetUserId(HubConnectionContext connection) => connection.User.FindFirstValue(JwtRegisteredClaimNames.Sub);
    }
}
