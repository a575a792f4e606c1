using System.ComponentModel.DataAnnotations;

namespace Workers.Notifier.Auth;

/// <summary>
/// Bearer tokens; section <c>Auth</c>. Either a shared HMAC key (<see cref="SigningKey"/>, tokens issued by a service you
/// run) or an OpenID Connect provider (<see cref="Authority"/>: Keycloak, Entra ID, Auth0, ...), whose discovery document
/// names the issuer and whose JWKS the signing keys.
/// </summary>
public sealed class AuthOptions : IValidatableObject
{
    public const string SectionName = "Auth";

    /// <summary>HMAC-SHA256 key, at least 32 characters; from the environment (<c>Auth__SigningKey</c>) in production.
    /// Required unless <see cref="Authority"/> is set.</summary>
    public string SigningKey { get; set; } = "";

    /// <summary>The OpenID Connect issuer URL (its <c>/.well-known/openid-configuration</c> is read); empty: shared key.</summary>
    public string Authority { get; set; } = "";

    /// <summary>Only for a local test issuer: accept an <c>http://</c> <see cref="Authority"/>.</summary>
    public bool RequireHttpsMetadata { get; set; } = true;

    /// <summary>The claim that carries the user id (<c>sub</c>; Entra ID's stable one is <c>oid</c>).</summary>
    [Required(AllowEmptyStrings = false)]
    public string UserIdClaim { get; set; } = "sub";

    /// <summary>The claim that carries the token's roles (<c>roles</c>: Entra ID's app roles; map Keycloak's realm roles
    /// to it with a protocol mapper). One claim per role, or a JSON array.</summary>
    [Required(AllowEmptyStrings = false)]
    public string RoleClaim { get; set; } = "roles";

    /// <summary>The role that opens the operator's admin API and page (<c>/admin</c>).</summary>
    [Required(AllowEmptyStrings = false)]
    public string AdminRole { get; set; } = "workers-admin";

    /// <summary>Shared key only: the <c>iss</c> the tokens carry. With an authority, the discovery document's.</summary>
    public string Issuer { get; set; } = "workers";

    /// <summary>The <c>aud</c> a token must carry (with an authority: this API's client id or application id URI).</summary>
    public string Audience { get; set; } = "workers";

    /// <summary>Lifetime of the tokens <c>/dev/token</c> issues (Development only).</summary>
    [Range(typeof(TimeSpan), "00:00:01", "7.00:00:00")]
    public TimeSpan DevTokenLifetime { get; set; } = TimeSpan.FromHours(8);

    public bool UsesAuthority => Authority.Length > 0;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (!UsesAuthority && SigningKey.Length == 0)
        {
            yield return new ValidationResult("is required (or Auth:Authority, for an OpenID Connect provider)", [nameof(SigningKey)]);
        }

        if (SigningKey.Length is > 0 and < 32)
        {
            yield return new ValidationResult("must be at least 32 characters", [nameof(SigningKey)]);
        }

        if (UsesAuthority && (!Uri.TryCreate(Authority, UriKind.Absolute, out var authority)
                              || (authority.Scheme != Uri.UriSchemeHttps && (RequireHttpsMetadata || authority.Scheme != Uri.UriSchemeHttp))))
        {
            yield return new ValidationResult("must be an https:// URL (http:// only with Auth:RequireHttpsMetadata=false)",
                [nameof(Authority)]);
        }
    }
}
