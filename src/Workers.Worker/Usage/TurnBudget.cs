using Microsoft.Extensions.Options;
using Workers.Contracts;
using Workers.Core.Sessions;
using Workers.Core.Usage;

namespace Workers.Worker.Usage;

/// <summary>
/// Keeps a user within the deployment's budgets across the whole pool: before the model is called, a turn reserves
/// the most it may spend, and is refused with <c>quota_exceeded</c> if what the user spent plus what their running
/// turns reserved would then pass a budget. One user's sessions run at once on different partitions and workers, so
/// the check and the reservation are one transaction that first locks the user's row of the day: reservations of one
/// user queue there, and each sees the ones before it. The turn's commit settles: it deletes the reservation and adds
/// what was really spent (<c>TurnStore</c>).
/// </summary>
public sealed class TurnBudget(SessionStore store, IOptions<UsageOptions> options)
{
    // A reservation whose turn never committed (its worker died, its request was parked) stops counting after this:
    // longer than a turn's model call may take.
    private static readonly TimeSpan Abandoned = TimeSpan.FromMinutes(30);

    private readonly UsageOptions _options = options.Value;

    public bool Enabled => _options.Enabled;

    /// <summary>Reserves <paramref name="tokens"/> and <paramref name="costMicros"/> for this request (again, if a
    /// redelivery reserved before: the same row), or throws <c>quota_exceeded</c>.</summary>
    public async Task ReserveAsync(ChatRequested request, long tokens, long costMicros)
    {
        ArgumentNullException.ThrowIfNull(request);
        await using var scope = await store.BeginAsync(request.UserId, request.SessionId, CancellationToken.None);
        await using var batch = scope.Batch();
        batch.Add(
            """
            INSERT INTO workers.user_usage (owner_id, day) VALUES ($1, (now() AT TIME ZONE 'UTC')::date)
            ON CONFLICT (owner_id, day) DO NOTHING
            """, request.UserId);
        batch.Add("SELECT 1 FROM workers.user_usage WHERE owner_id = $1 AND day = (now() AT TIME ZONE 'UTC')::date FOR UPDATE",
            request.UserId);
        // A statement after the lock: its snapshot sees every reservation and settlement committed before it was granted.
        var reserved = batch.Add(
            """
            WITH spent AS (
                SELECT coalesce(sum(prompt_tokens + completion_tokens) FILTER (WHERE day = (now() AT TIME ZONE 'UTC')::date), 0) AS day_tokens,
                       coalesce(sum(prompt_tokens + completion_tokens), 0) AS month_tokens,
                       coalesce(sum(cost_micros), 0) AS month_cost
                FROM workers.user_usage
                WHERE owner_id = $1 AND day >= date_trunc('month', now() AT TIME ZONE 'UTC')::date),
            held AS (
                SELECT coalesce(sum(tokens), 0) AS tokens, coalesce(sum(cost_micros), 0) AS cost
                FROM workers.usage_reservations
                WHERE owner_id = $1 AND (session_id, request_id) <> ($9, $2) AND reserved_at > now() - $5)
            INSERT INTO workers.usage_reservations (owner_id, session_id, request_id, tokens, cost_micros)
            SELECT $1, $9, $2, $3, $4 FROM spent, held
            WHERE ($6::bigint IS NULL OR spent.day_tokens + held.tokens + $3 <= $6)
              AND ($7::bigint IS NULL OR spent.month_tokens + held.tokens + $3 <= $7)
              AND ($8::bigint IS NULL OR spent.month_cost + held.cost + $4 <= $8)
            ON CONFLICT (owner_id, session_id, request_id) DO UPDATE
                SET tokens = EXCLUDED.tokens, cost_micros = EXCLUDED.cost_micros, reserved_at = now()
            """, request.UserId, request.RequestId, tokens, costMicros, Abandoned, _options.DailyTokens, _options.MonthlyTokens,
            _options.MonthlyCostMicros, request.SessionId);
        await batch.ExecuteNonQueryAsync();
        if (reserved.RecordsAffected != 1)
        {
            // A refused attempt does not count toward parking the request: the same id sent again once the budget
            // allows it runs like a new one (a client may reuse its request id).
            await using var uncount = await scope.CommandAsync(
                "UPDATE workers.inbox SET attempts = greatest(attempts - 1, 0), updated_at = now() " +
                "WHERE session_id = $1 AND request_id = $2 AND status = 'started'");
            uncount.Parameters.Add(new Npgsql.NpgsqlParameter { Value = request.SessionId });
            uncount.Parameters.Add(new Npgsql.NpgsqlParameter { Value = request.RequestId });
            await uncount.ExecuteNonQueryAsync();
            await scope.CommitAsync(CancellationToken.None);
            throw new ChatErrorException(ErrorCodes.QuotaExceeded,
                "your usage budget would be passed by this message; it was not sent to the model");
        }

        await scope.CommitAsync(CancellationToken.None);
    }
}
