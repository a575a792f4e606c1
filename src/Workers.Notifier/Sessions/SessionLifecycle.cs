using Microsoft.EntityFrameworkCore;
using Workers.Contracts;
using Workers.Core.Sessions;

namespace Workers.Notifier.Sessions;

/// <summary>
/// What a user does with their sessions. Every call is one <see cref="RlsScope"/>: another user's session and a
/// missing one are the same <c>session_not_found</c>.
/// </summary>
public sealed class SessionLifecycle(SessionStore store)
{
    public const int MaxTitleLength = 200;

    public async Task<SessionSummary> CreateAsync(string userId, string? title, CancellationToken cancellationToken)
    {
        var session = new Session
        {
            Id = Guid.CreateVersion7(),
            OwnerId = userId,
            Title = CheckTitle(title),
            CreatedAt = DateTimeOffset.UtcNow,
            LastActiveAt = DateTimeOffset.UtcNow,
        };
        await using var scope = await store.BeginAsync(userId, session.Id, cancellationToken);
        var db = await scope.DbAsync(cancellationToken);
        db.Sessions.Add(session);
        await db.SaveChangesAsync(cancellationToken);
        await scope.CommitAsync(cancellationToken);
        return SessionSummary.Of(session);
    }

    public async Task<IReadOnlyList<SessionSummary>> ListAsync(string userId, CancellationToken cancellationToken)
    {
        await using var scope = await store.BeginAsync(userId, null, cancellationToken);
        var db = await scope.DbAsync(cancellationToken);
        var sessions = await db.Sessions.AsNoTracking()
            .OrderByDescending(s => s.LastActiveAt)
            .Take(500)
            .ToListAsync(cancellationToken);
        return sessions.ConvertAll(SessionSummary.Of);
    }

    /// <summary>Whether the user owns the session; the notifier asks before subscribing a connection.</summary>
    public async Task<SessionSummary> GetAsync(string userId, Guid sessionId, CancellationToken cancellationToken)
    {
        await using var scope = await store.BeginAsync(userId, sessionId, cancellationToken);
        var db = await scope.DbAsync(cancellationToken);
        var session = await db.Sessions.AsNoTracking().SingleOrDefaultAsync(s => s.Id == sessionId, cancellationToken);
        return session is null ? throw ChatErrorException.SessionNotFound() : SessionSummary.Of(session);
    }

    /// <summary>Turns whose last event number is above <paramref name="afterSeq"/>, oldest first, at most <paramref name="limit"/>.</summary>
    public async Task<IReadOnlyList<Turn>> HistoryAsync(
        string userId, Guid sessionId, long afterSeq, int limit, CancellationToken cancellationToken)
    {
        await using var scope = await store.BeginAsync(userId, sessionId, cancellationToken);
        var db = await scope.DbAsync(cancellationToken);
        if (!await db.Sessions.AnyAsync(s => s.Id == sessionId, cancellationToken))
        {
            throw ChatErrorException.SessionNotFound();
        }

        return await db.Turns.AsNoTracking()
            .Where(t => t.SessionId == sessionId && t.LastSeq > afterSeq)
            .OrderBy(t => t.TurnNo)
            .Take(Math.Clamp(limit, 1, 500))
            .ToListAsync(cancellationToken);
    }

    /// <summary>
    /// The newest turns whose last event number is above <paramref name="afterSeq"/>, oldest first: at most
    /// <paramref name="limit"/> of them and, beyond the newest one, no more than <paramref name="maxReplyChars"/>
    /// characters of reply text. Read newest first and stopped at the budget, so a long history is never loaded whole.
    /// </summary>
    public async Task<IReadOnlyList<Turn>> LatestAsync(
        string userId, Guid sessionId, long afterSeq, int limit, int maxReplyChars, CancellationToken cancellationToken)
    {
        await using var scope = await store.BeginAsync(userId, sessionId, cancellationToken);
        var db = await scope.DbAsync(cancellationToken);
        if (!await db.Sessions.AnyAsync(s => s.Id == sessionId, cancellationToken))
        {
            throw ChatErrorException.SessionNotFound();
        }

        var turns = new List<Turn>();
        long chars = 0;
        await foreach (var turn in db.Turns.AsNoTracking()
                           .Where(t => t.SessionId == sessionId && t.LastSeq > afterSeq)
                           .OrderByDescending(t => t.TurnNo)
                           .Take(Math.Clamp(limit, 1, 500))
                           .AsAsyncEnumerable().WithCancellation(cancellationToken))
        {
            chars += turn.ReplyText.Length;
            if (turns.Count > 0 && chars > maxReplyChars)
            {
                break;
            }

            turns.Add(turn);
        }

        turns.Reverse();
        return turns;
    }

    public async Task<SessionSummary> RenameAsync(string userId, Guid sessionId, string? title, CancellationToken cancellationToken)
    {
        var checkedTitle = CheckTitle(title);
        await using var scope = await store.BeginAsync(userId, sessionId, cancellationToken);
        var db = await scope.DbAsync(cancellationToken);
        var session = await db.Sessions.SingleOrDefaultAsync(s => s.Id == sessionId, cancellationToken)
            ?? throw ChatErrorException.SessionNotFound();
        session.Title = checkedTitle;
        await db.SaveChangesAsync(cancellationToken);
        await scope.CommitAsync(cancellationToken);
        return SessionSummary.Of(session);
    }

    /// <summary>Deletes the session and, by cascade in the same transaction, its turns, inbox and notes.</summary>
    public async Task DeleteAsync(string userId, Guid sessionId, CancellationToken cancellationToken)
    {
        await using var scope = await store.BeginAsync(userId, sessionId, cancellationToken);
        var db = await scope.DbAsync(cancellationToken);
        var deleted = await db.Sessions.Where(s => s.Id == sessionId).ExecuteDeleteAsync(cancellationToken);
        if (deleted == 0)
        {
            throw ChatErrorException.SessionNotFound();
        }

        await scope.CommitAsync(cancellationToken);
    }

    private static string CheckTitle(string? title)
    {
        var trimmed = (title ?? "").Trim();
        return trimmed.Length > MaxTitleLength
            ? throw new ChatErrorException(Workers.Contracts.ErrorCodes.TooLarge, $"title is longer than {MaxTitleLength} characters")
            : trimmed;
    }
}
