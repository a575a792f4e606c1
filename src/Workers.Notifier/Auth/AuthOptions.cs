using System.ComponentModel.DataAnnotations;

namespace Workers.Notifier.Auth;

/// <summary>Bearer tokens; section <c>Auth</c>.</summary>
public sealed class AuthOptions
{
    public const string SectionName = "Auth";

    /// <summary>HMAC-SHA256 key, at least 32 characters; from the environment (<c>Auth__SigningKey</c>) in production.</summary>
    [Required(AllowEmptyStrings = false)]
    [MinLength(32, ErrorMessage = "must be at least 32 characters")]
    public string SigningKey { get; set; } = "";

    public string Issuer { get; set; } = "workers";

    public string Audience { get; set; } = "workers";

    /// <summary>Lifetime of the tokens <c>/dev/token</c> issues (Development only).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "7.00:00:00")]
    public TimeSpan DevTokenLifetime { get; set; } = TimeSpan.FromHours(8);
}
