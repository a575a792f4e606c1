namespace Workers.Notifier.Auth;

/// <param name="UserId">The token's subject.</param>
/// <param name="Admin">Adds <see cref="AuthOptions.AdminRole"/>: the operator's page, in Development.</param>
public sealed record DevTokenRequest(string? UserId, bool Admin = false);
