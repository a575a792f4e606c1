namespace Workers.Notifier.Auth;

public sealed record DevTokenRequest(string? UserId);
