namespace Workers.Worker.Ordering;

/// <summary>
/// What the error queue keeps of a refused or parked request: ids, the error code and a reason the worker wrote
/// itself, never the user's text or an exception's message (both can quote the user). Where the text is kept for an
/// operator, it is in <c>workers.parked_requests</c>, under row-level security and deleted with its session.
/// </summary>
/// <param name="Code">A stable error code (<c>ErrorCodes</c>).</param>
/// <param name="Reason">The worker's own words: which field was wrong, how many attempts, which exception type.</param>
/// <param name="SessionId">When it could be read.</param>
/// <param name="RequestId">When it could be read.</param>
/// <param name="UserId">When it could be read.</param>
/// <param name="ExceptionType">The type of an unexpected exception, without its message.</param>
public sealed record DeadLetter(string Code, string Reason, Guid? SessionId, Guid? RequestId, string? UserId, string? ExceptionType = null);
