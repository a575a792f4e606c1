using System.Diagnostics;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using Workers.Contracts;
using Workers.Core.Sessions;

namespace Workers.Notifier.Sessions;

/// <summary>
/// What a user does with their sessions. Every call is one <see cref="RlsScope"/>: another user's session and a
/// missing one are the same <c>session_not_found</c>. A transaction a PostgreSQL failover broke is run again on the
/// new primary (each is one transaction with nothing outside the database to undo), so a browser's call waits out the
/// failover instead of failing.
/// </summary>
public sealed class SessionLifecycle(SessionStore store, ILogger<SessionLifecycle> logger)
{
    public const int MaxTitleLength = 200;

    /// <summary>How long a call keeps retrying through a failover: pg_auto_failover promotes a standby within about
    /// 20 s of the primary's death (measured: serving again 10–15 s after it), and the caller can give up sooner.</summary>
    public static readonly TimeSpan FailoverWindow = TimeSpan.FromSeconds(45);

    public Task<SessionSummary> CreateAsync(string userId, string? title, CancellationToken cancellationToken,
        string? systemPrompt = null, double? temperature = null, string? model = null, IReadOnlyList<string>? tools = null)
    {
        var session = new Session
        {
            Id = Guid.CreateVersion7(),
            OwnerId = userId,
            Title = CheckTitle(title),
            CreatedAt = DateTimeOffset.UtcNow,
            LastActiveAt = DateTimeOffset.UtcNow,
            SystemPrompt = CheckPrompt(systemPrompt),
            Temperature = CheckTemperature(temperature),
            Model = CheckModel(model),
            Tools = CheckTools(tools),
        };
        return InTransactionAsync(userId, session.Id, async (scope, db, attempt) =>
        {
            try
            {
                db.Sessions.Add(session);
                await db.SaveChangesAsync(cancellationToken);
                await scope.CommitAsync(cancellationToken);
            }
            catch (DbUpdateException e) when (attempt > 0 && e.InnerException is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation })
            {
                // The attempt the failover broke had committed before its answer was lost: the session is there.
            }

            return SessionSummary.Of(session);
        }, cancellationToken);
    }

    public Task<IReadOnlyList<SessionSummary>> ListAsync(string userId, CancellationToken cancellationToken) =>
        InTransactionAsync<IReadOnlyList<SessionSummary>>(userId, null, async (_, db, _) =>
        {
            var sessions = await db.Sessions.AsNoTracking()
                .OrderByDescending(s => s.LastActiveAt)
                .Take(500)
                .ToListAsync(cancellationToken);
            return sessions.ConvertAll(SessionSummary.Of);
        }, cancellationToken);

    /// <summary>The user's totals today and this month (UTC), from the rows each turn's commit adds to.</summary>
    public Task<(UsageTotals Today, UsageTotals Month)> UsageAsync(string userId, CancellationToken cancellationToken) =>
        InTransactionAsync(userId, null, async (scope, _, _) =>
        {
            await using var command = await scope.CommandAsync(
                """
                SELECT day = (now() AT TIME ZONE 'UTC')::date, turns, prompt_tokens, completion_tokens, cached_tokens, cost_micros
                FROM workers.user_usage WHERE day >= date_trunc('month', now() AT TIME ZONE 'UTC')::date
                """, cancellationToken);
            var today = new UsageTotals(0, 0, 0, 0, 0);
            var month = today;
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var day = new UsageTotals(reader.GetInt32(1), reader.GetInt64(2), reader.GetInt64(3), reader.GetInt64(4),
                    reader.GetInt64(5) / 1_000_000m);
                month = Add(month, day);
                today = reader.GetBoolean(0) ? day : today;
            }

            return (today, month);
        }, cancellationToken);

    private static UsageTotals Add(UsageTotals a, UsageTotals b) => new(a.Turns + b.Turns, a.PromptTokens + b.PromptTokens,
        a.CompletionTokens + b.CompletionTokens, a.CachedTokens + b.CachedTokens, a.CostUsd + b.CostUsd);

    /// <summary>Whether the user owns the session; the notifier asks before subscribing a connection.</summary>
    public Task<SessionSummary> GetAsync(string userId, Guid sessionId, CancellationToken cancellationToken) =>
        InTransactionAsync(userId, sessionId, async (_, db, _) =>
        {
            var session = await db.Sessions.AsNoTracking().SingleOrDefaultAsync(s => s.Id == sessionId, cancellationToken);
            return session is null ? throw ChatErrorException.SessionNotFound() : SessionSummary.Of(session);
        }, cancellationToken);

    /// <summary>Turns whose last event number is above <paramref name="afterSeq"/>, oldest first, at most <paramref name="limit"/>:
    /// the current ones, and with <paramref name="superseded"/> also the versions regenerate and edit replaced.</summary>
    public Task<IReadOnlyList<Turn>> HistoryAsync(string userId, Guid sessionId, long afterSeq, int limit, CancellationToken cancellationToken,
        bool superseded = false) =>
        InTransactionAsync<IReadOnlyList<Turn>>(userId, sessionId, async (_, db, _) =>
        {
            if (!await db.Sessions.AnyAsync(s => s.Id == sessionId, cancellationToken))
            {
                throw ChatErrorException.SessionNotFound();
            }

            return await db.Turns.AsNoTracking()
                .Where(t => t.SessionId == sessionId && t.LastSeq > afterSeq && (superseded || t.SupersededBy == null))
                .OrderBy(t => t.TurnNo)
                .Take(Math.Clamp(limit, 1, 500))
                .ToListAsync(cancellationToken);
        }, cancellationToken);

    /// <summary>
    /// The newest turns whose last event number is above <paramref name="afterSeq"/>, oldest first: at most
    /// <paramref name="limit"/> of them and, beyond the newest one, no more than <paramref name="maxReplyChars"/>
    /// characters of reply text. Read newest first and stopped at the budget, so a long history is never loaded whole.
    /// With them, for each one that replaced an earlier version (regenerate, edit), the request it replaced.
    /// </summary>
    public Task<(IReadOnlyList<Turn> Turns, IReadOnlyDictionary<long, Guid> Replaced)> LatestAsync(
        string userId, Guid sessionId, long afterSeq, int limit, int maxReplyChars, CancellationToken cancellationToken) =>
        InTransactionAsync<(IReadOnlyList<Turn>, IReadOnlyDictionary<long, Guid>)>(userId, sessionId, async (_, db, _) =>
        {
            if (!await db.Sessions.AnyAsync(s => s.Id == sessionId, cancellationToken))
            {
                throw ChatErrorException.SessionNotFound();
            }

            var turns = new List<Turn>();
            long chars = 0;
            await foreach (var turn in db.Turns.AsNoTracking()
                               .Where(t => t.SessionId == sessionId && t.LastSeq > afterSeq && t.SupersededBy == null)
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
            // Only a session with versions pays the second query: the turn numbers jump where a version was replaced.
            if (turns.Count == 0 || turns[^1].TurnNo - turns[0].TurnNo == turns.Count - 1 && turns[0].TurnNo == 1)
            {
                return (turns, new Dictionary<long, Guid>());
            }

            var from = turns[0].TurnNo;
            var replaced = await db.Turns.AsNoTracking()
                .Where(t => t.SessionId == sessionId && t.SupersededBy != null && t.SupersededBy >= from)
                .ToDictionaryAsync(t => t.SupersededBy!.Value, t => t.RequestId, cancellationToken);
            return (turns, replaced);
        }, cancellationToken);

    /// <summary>Changes what is given: the title, the system prompt ('' goes back to the deployment's), the temperature,
    /// the model ('' the default) and the tool servers ([] none); null leaves a field as it is.</summary>
    public Task<SessionSummary> UpdateAsync(string userId, Guid sessionId, string? title, CancellationToken cancellationToken,
        string? systemPrompt = null, double? temperature = null, string? model = null, IReadOnlyList<string>? tools = null)
    {
        var checkedModel = CheckModel(model);
        var checkedTools = CheckTools(tools);
        var checkedTitle = title is null ? null : CheckTitle(title);
        var checkedPrompt = CheckPrompt(systemPrompt);
        var checkedTemperature = CheckTemperature(temperature);
        return InTransactionAsync(userId, sessionId, async (scope, db, _) =>
        {
            var session = await db.Sessions.SingleOrDefaultAsync(s => s.Id == sessionId, cancellationToken)
                ?? throw ChatErrorException.SessionNotFound();
            session.Title = checkedTitle ?? session.Title;
            session.SystemPrompt = systemPrompt is null ? session.SystemPrompt : checkedPrompt;
            session.Temperature = checkedTemperature ?? session.Temperature;
            session.Model = model is null ? session.Model : checkedModel;
            session.Tools = checkedTools ?? session.Tools;
            await db.SaveChangesAsync(cancellationToken);
            await scope.CommitAsync(cancellationToken);
            return SessionSummary.Of(session);
        }, cancellationToken);
    }

    /// <summary>Deletes the session and, by cascade in the same transaction, its turns, inbox and notes.</summary>
    public Task DeleteAsync(string userId, Guid sessionId, CancellationToken cancellationToken) =>
        InTransactionAsync(userId, sessionId, async (scope, db, attempt) =>
        {
            var deleted = await db.Sessions.Where(s => s.Id == sessionId).ExecuteDeleteAsync(cancellationToken);
            // On a retry, nothing to delete can mean the broken attempt committed; a delete is answered the same either way.
            if (deleted == 0 && attempt == 0)
            {
                throw ChatErrorException.SessionNotFound();
            }

            await scope.CommitAsync(cancellationToken);
            return deleted;
        }, cancellationToken);

    /// <summary>
    /// One transaction as the user, run again while a failover keeps breaking it (within <see cref="FailoverWindow"/>
    /// and until the caller gives up). <paramref name="work"/> gets the attempt number, for writes whose first attempt
    /// may have committed before the connection broke.
    /// </summary>
    private async Task<T> InTransactionAsync<T>(string userId, Guid? sessionId, Func<RlsScope, WorkersDb, int, Task<T>> work,
        CancellationToken cancellationToken)
    {
        long? failingSince = null;
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await using var scope = await store.BeginAsync(userId, sessionId, cancellationToken);
                return await work(scope, await scope.DbAsync(cancellationToken), attempt);
            }
            catch (Exception e) when (DatabaseFailover.Is(e) && !cancellationToken.IsCancellationRequested
                                      && Stopwatch.GetElapsedTime(failingSince ??= Stopwatch.GetTimestamp()) < FailoverWindow)
            {
                // The pool's idle connections lead to the old primary or to a node that is a standby now.
                store.ForgetConnections();
                logger.LogWarning("Session {SessionId}: database unavailable ({Error}), retry {Attempt}",
                    sessionId, DatabaseFailover.Describe(e), attempt + 1);
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(2000, 100 * Math.Pow(2, Math.Min(attempt, 5)))), cancellationToken);
            }
        }
    }

    // '' (or only spaces) means "the deployment's prompt": stored as null.
    private static string? CheckPrompt(string? prompt) =>
        prompt is { Length: > ChatLimits.MaxSystemPromptLength }
            ? throw new ChatErrorException(ErrorCodes.TooLarge, $"systemPrompt is longer than {ChatLimits.MaxSystemPromptLength} characters")
            : string.IsNullOrWhiteSpace(prompt) ? null : prompt;

    // '' means "the deployment's default model": stored as null. Whether the workers have it is theirs to say.
    private static string? CheckModel(string? model) =>
        string.IsNullOrEmpty(model) ? null
        : ChatLimits.IsModelName(model) ? model
        : throw new ChatErrorException(ErrorCodes.InvalidRequest,
            "model must be a model's name: a letter or digit, then up to 63 letters, digits, '.', '_' or '-'");

    // The tool servers by name (an empty list: none); whether the workers have them is theirs to say.
    private static string[]? CheckTools(IReadOnlyList<string>? tools) =>
        tools is null ? null
        : ChatLimits.CheckToolServers(tools) is { } error ? throw new ChatErrorException(ErrorCodes.InvalidRequest, error)
        : [.. tools.Distinct(StringComparer.Ordinal)];

    private static float? CheckTemperature(double? temperature) =>
        temperature is null ? null
        : temperature is >= 0 and <= ChatLimits.MaxTemperature ? (float)temperature.Value
        : throw new ChatErrorException(ErrorCodes.InvalidRequest, $"temperature must be a number from 0 to {ChatLimits.MaxTemperature}");

    private static string CheckTitle(string? title)
    {
        var trimmed = (title ?? "").Trim();
        return trimmed.Length > MaxTitleLength
            ? throw new ChatErrorException(Workers.Contracts.ErrorCodes.TooLarge, $"title is longer than {MaxTitleLength} characters")
            : trimmed;
    }
}
