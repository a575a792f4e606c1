using Workers.Tests.Infrastructure;

namespace Workers.Tests.Notifier;

/// <summary>A database, a virtual host, one worker and one notifier: the smallest whole system.</summary>
public static class NotifierSystem
{
    public static async Task<(WorkersSystem Pool, NotifierProcess Notifier)> StartAsync(
        ServicesFixture services, IReadOnlyDictionary<string, string>? workerSettings = null,
        IReadOnlyDictionary<string, string>? notifierSettings = null)
    {
        var pool = await WorkersSystem.CreateAsync(services.Services, settings: workerSettings);
        await pool.StartWorkerAsync();
        return (pool, await pool.StartNotifierAsync(notifierSettings));
    }

    public static string ExpiredToken(string userId)
    {
        var key = new Microsoft.IdentityModel.Tokens.SymmetricSecurityKey(System.Text.Encoding.UTF8.GetBytes(WorkersSystem.SigningKey));
        var token = new System.IdentityModel.Tokens.Jwt.JwtSecurityToken("workers", "workers",
            [new System.Security.Claims.Claim("sub", userId)], DateTime.UtcNow.AddHours(-2), DateTime.UtcNow.AddHours(-1),
            new Microsoft.IdentityModel.Tokens.SigningCredentials(key, Microsoft.IdentityModel.Tokens.SecurityAlgorithms.HmacSha256));
        return new System.IdentityModel.Tokens.Jwt.JwtSecurityTokenHandler().WriteToken(token);
    }
}
