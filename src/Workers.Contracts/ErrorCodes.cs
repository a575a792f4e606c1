namespace Workers.Contracts;

/// <summary>Stable error codes of <see cref="TurnFailed"/> and of the notifier's errors.</summary>
public static class ErrorCodes
{
    /// <summary>The session does not exist or belongs to someone else (the two are never told apart).</summary>
    public const string SessionNotFound = "session_not_found";

    /// <summary>The request is malformed: bad JSON, a missing or mistyped field, an id that is not a UUID.</summary>
    public const string InvalidRequest = "invalid_request";

    /// <summary>The text or message is over its size limit.</summary>
    public const string TooLarge = "too_large";

    /// <summary>Too many requests of this session are already waiting.</summary>
    public const string SessionBusy = "session_busy";

    /// <summary>The model provider failed after bounded retries.</summary>
    public const string ModelError = "model_error";

    /// <summary>The turn was cancelled.</summary>
    public const string Cancelled = "cancelled";

    /// <summary>The request was delivered too many times (it kept killing its worker) and was parked.</summary>
    public const string Poisoned = "poisoned";

    /// <summary>An unexpected failure inside the worker.</summary>
    public const string InternalError = "internal_error";

    /// <summary>The user sends faster than the configured rate.</summary>
    public const string RateLimited = "rate_limited";

    /// <summary>The user's token or cost budget (per day or per month) would be passed by this turn; the model was
    /// not called.</summary>
    public const string QuotaExceeded = "quota_exceeded";

    /// <summary>The broker did not confirm the message in time (a node failing over): it may or may not have been
    /// queued. Send it again with the same request id; it runs once.</summary>
    public const string Unavailable = "unavailable";
}
