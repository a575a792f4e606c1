using Microsoft.EntityFrameworkCore;
using Npgsql;
using Workers.Contracts;
using Workers.Core.Sessions;
using Workers.Worker.Memory;
using Workers.Worker.Ordering;
using Workers.Worker.Tools;

namespace Workers.Worker.Turns;

/// <summary>
/// The SQL of a turn: its two transactions (start: create-if-new, reserve event numbers, inbox, summary and history;
/// commit: the fencing check, the turn row, the inbox and a new summary together), parking, and the lookup of an
/// already committed outcome.
/// Each transaction is one round trip; every one runs as the request's user, under row-level security.
/// </summary>
public sealed class TurnStore(SessionStore store, Microsoft.Extensions.Options.IOptions<Workers.Worker.Model.ModelOptions> model,
    Microsoft.Extensions.Options.IOptions<Workers.Core.Usage.UsageOptions> usage)
{
    // Without budgets no turn reserves, so its commit has no reservation to release: one statement less per turn.
    // (One made while budgets were on stops counting after TurnBudget's 30 minutes.)
    private readonly bool _releaseReservation = usage.Value.Enabled;

    // Each attempt reserves this many event numbers, so numbers only grow even when a crashed attempt is re-run.
    internal const long SeqBlock = 1 << 20;
    // A bound on one load, never a cut: a turn is at least 8 tokens (two messages' framing), so window / 8 rows are more
    // than the window holds, and the memory folds turns into the summary before that many pile up after it.
    private readonly int _historyRows = Math.Max(200, (model.Value.LargestContextWindow / (2 * TokenCount.PerMessage)) + 1);

    /// <inheritdoc cref="SessionStore.ForgetConnections"/>
    public void ForgetConnections() => store.ForgetConnections();

    /// <summary>Transaction 1. Throws <c>session_not_found</c> for a session of another user.</summary>
    /// <param name="request">The request.</param>
    /// <param name="counted">This delivery's attempt is already counted (an in-place retry after this transaction
    /// committed once): the attempts counter stands in for a delivery count, to park a request that keeps killing its
    /// worker, and a broker or database outage retried in place must not park a healthy request.</param>
    public async Task<TurnStart> StartAsync(ChatRequested request, bool counted = false)
    {
        await using var scope = await store.BeginAsync(request.UserId, request.SessionId, CancellationToken.None);
        await using var batch = scope.Batch();
        CreateSessionIfNew(batch, request);
        ReserveEventSeqsAndApplySettings(batch, request);
        RecordAttempt(batch, request, counted);
        LoadMemory(batch, request.SessionId);
        var replace = request.ReplaceLast == true;
        LoadHistory(batch, request.SessionId, _historyRows, replace);
        if (replace)
        {
            LoadLastTurn(batch, request.SessionId);
        }

        try
        {
            await using var reader = await batch.ExecuteReaderAsync();
            if (!await reader.ReadAsync())
            {
                // The session exists but this user cannot see it: it is someone else's.
                throw ChatErrorException.SessionNotFound();
            }

            var turnSeq = reader.GetInt64(0);
            var firstSeq = reader.GetInt64(1) + 1;
            var settings = new SessionSettings(reader.IsDBNull(2) ? null : reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetFloat(3),
                reader.IsDBNull(4) ? null : reader.GetString(4), reader.IsDBNull(5) ? null : reader.GetFieldValue<string[]>(5));
            await reader.NextResultAsync();
            await reader.ReadAsync();
            var alreadyProcessed = reader.GetString(0) != TurnStatus.Started;
            var attempts = reader.GetInt32(1);
            await reader.NextResultAsync();
            var memory = await reader.ReadAsync() ? new SessionMemory(reader.GetInt64(0), reader.GetString(1), reader.GetInt32(2)) : null;
            await reader.NextResultAsync();
            var history = new List<HistoryTurn>();
            while (await reader.ReadAsync())
            {
                history.Add(new HistoryTurn(reader.GetInt64(0), reader.GetString(1), reader.GetString(2),
                    reader.IsDBNull(3) ? null : reader.GetInt32(3), reader.IsDBNull(4) ? null : ToolCall.ListFromJson(reader.GetString(4))));
            }

            (long TurnNo, Guid RequestId, string UserText)? replaces = null;
            if (replace && await reader.NextResultAsync() && await reader.ReadAsync())
            {
                replaces = (reader.GetInt64(0), reader.GetGuid(1), reader.GetString(2));
            }

            await reader.DisposeAsync();
            if (alreadyProcessed)
            {
                return new TurnStart(true, turnSeq, firstSeq, attempts, [], null, settings);
            }

            if (replace)
            {
                // Refused before anything is kept: the transaction is not committed.
                if (replaces is null)
                {
                    throw new ChatErrorException(ErrorCodes.InvalidRequest, "this session has no turn to replace yet");
                }

                if (memory is not null && memory.ThroughTurn >= replaces.Value.TurnNo)
                {
                    throw new ChatErrorException(ErrorCodes.InvalidRequest,
                        "the session's last turn is already folded into its summary and cannot be replaced");
                }
            }

            await scope.CommitAsync(CancellationToken.None);
            history.Reverse();
            return new TurnStart(false, turnSeq, firstSeq, attempts, history, memory, settings, replaces);
        }
        catch (PostgresException e) when (OwnershipConflicts.Reveal(e))
        {
            throw ChatErrorException.SessionNotFound();
        }
    }

    /// <summary>Transaction 2: the turn, its inbox row, a new summary (<paramref name="memory"/>, if the turn wrote one)
    /// and the fencing check commit together or not at all.</summary>
    /// <returns>False when fenced out: the session moved on (another attempt committed) or the lease is no longer
    /// <paramref name="lease"/>'s.</returns>
    public async Task<bool> CommitAsync(Turn turn, long seenTurnSeq, PartitionLease lease, SessionMemory? memory = null,
        long? replacesTurnNo = null)
    {
        await using var scope = await store.BeginAsync(turn.OwnerId, turn.SessionId, CancellationToken.None);
        await using var batch = scope.Batch();
        // A session without a title is named after its first exchange, in the same row update as the fence.
        var title = turn.TurnNo == 1 && turn.Status == TurnStatus.Complete ? SessionTitle.FromFirstMessage(turn.UserText) : null;
        var fence = AdvanceTurnCounterIfLeaseHeld(batch, turn.SessionId, seenTurnSeq, lease, title);
        InsertTurn(batch, turn);
        if (replacesTurnNo is { } replaced && turn.Status != TurnStatus.Failed)
        {
            // The old version stays, marked; history and replay read only current turns. A replacement that failed
            // leaves the old version current (a failed turn is no part of later prompts: the exchange would vanish).
            batch.Add("UPDATE workers.turns SET superseded_by = $3 WHERE session_id = $1 AND turn_no = $2 AND superseded_by IS NULL",
                turn.SessionId, replaced, turn.TurnNo);
        }

        if (memory is not null)
        {
            StoreMemory(batch, turn, memory);
        }

        SettleUsage(batch, turn, _releaseReservation);

        var inbox = CompleteInbox(batch, turn.SessionId, turn.RequestId, turn.Status);
        try
        {
            await batch.ExecuteNonQueryAsync();
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            return false;
        }

        if (fence.RecordsAffected != 1 || inbox.RecordsAffected != 1)
        {
            return false;
        }

        await scope.CommitAsync(CancellationToken.None);
        return true;
    }

    /// <summary>Sets a request aside: its text goes to <c>parked_requests</c> (under RLS, deleted with the session) for an
    /// operator. A poisoned request's inbox row is marked failed too, so a redelivery of it is acked without a turn.</summary>
    /// <returns>False when the session is not this user's (or does not exist): nothing is kept then.</returns>
    public async Task<bool> ParkAsync(ChatRequested request, string code, string reason, int attempts)
    {
        await using var scope = await store.BeginAsync(request.UserId, request.SessionId, CancellationToken.None);
        await using var batch = scope.Batch();
        if (code == ErrorCodes.Poisoned)
        {
            batch.Add("UPDATE workers.inbox SET status = 'failed', updated_at = now() WHERE session_id = $1 AND request_id = $2",
                request.SessionId, request.RequestId);
        }

        var kept = batch.Add(
            """
            INSERT INTO workers.parked_requests (session_id, request_id, owner_id, user_text, code, reason, attempts)
            SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM workers.sessions WHERE id = $1)
            ON CONFLICT (session_id, request_id) DO UPDATE
                SET code = EXCLUDED.code, reason = EXCLUDED.reason, attempts = EXCLUDED.attempts, parked_at = now()
            """, request.SessionId, request.RequestId, request.UserId, request.Text, code, reason, attempts);
        await batch.ExecuteNonQueryAsync();
        await scope.CommitAsync(CancellationToken.None);
        return kept.RecordsAffected == 1;
    }

    /// <summary>The committed turn of an already processed request, if it has one (a parked request has none).</summary>
    public async Task<Turn?> FindOutcomeAsync(ChatRequested request)
    {
        await using var scope = await store.BeginAsync(request.UserId, request.SessionId, CancellationToken.None);
        var db = await scope.DbAsync();
        return await db.Turns.AsNoTracking().FirstOrDefaultAsync(t => t.RequestId == request.RequestId);
    }

    // A first request for an unknown session creates it for its user; someone else's id stays theirs (DO NOTHING),
    // and the next statement then finds no row visible to this user.
    private static void CreateSessionIfNew(RlsBatch batch, ChatRequested request) =>
        batch.Add("INSERT INTO workers.sessions (id, owner_id) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            request.SessionId, request.UserId);

    // Only the event counter here (not indexed, so the row update stays HOT); activity is stamped at commit.
    // Also the settings a request carries (kept for the session's later turns; '' resets the prompt and the model), returned with the
    // counters: none of these columns is indexed, so the row update stays HOT.
    private static void ReserveEventSeqsAndApplySettings(RlsBatch batch, ChatRequested request) =>
        batch.Add(
            """
            UPDATE workers.sessions SET event_seq = event_seq + $2,
                system_prompt = CASE WHEN $3::text IS NULL THEN system_prompt ELSE NULLIF($3::text, '') END,
                temperature = coalesce($4::real, temperature),
                model = CASE WHEN $5::text IS NULL THEN model ELSE NULLIF($5::text, '') END,
                tools = coalesce($6::text[], tools)
            WHERE id = $1 RETURNING turn_seq, event_seq - $2, system_prompt, temperature, model, tools
            """, request.SessionId, SeqBlock, request.SystemPrompt, request.Temperature is { } t ? (float)t : null, request.Model,
            request.Tools?.ToArray());

    private static void RecordAttempt(RlsBatch batch, ChatRequested request, bool counted) =>
        batch.Add(
            """
            INSERT INTO workers.inbox (session_id, request_id, owner_id, status) VALUES ($1, $2, $3, 'started')
            ON CONFLICT (session_id, request_id) DO UPDATE SET attempts = inbox.attempts + $4, updated_at = now()
            RETURNING status, attempts
            """, request.SessionId, request.RequestId, request.UserId, counted ? 0 : 1);

    private static void LoadMemory(RlsBatch batch, Guid sessionId) =>
        batch.Add("SELECT through_turn, summary, tokens FROM workers.session_memory WHERE session_id = $1", sessionId);

    // The current turns after the summary, newest first (reversed by the caller); a turn that replaces the last one
    // leaves that one out.
    private static void LoadHistory(RlsBatch batch, Guid sessionId, int rows, bool replaceLast) =>
        batch.Add(
            """
            SELECT turn_no, user_text, reply_text, tokens, tool_calls::text FROM workers.turns
            WHERE session_id = $1 AND status <> 'failed' AND superseded_by IS NULL
              AND turn_no > coalesce((SELECT through_turn FROM workers.session_memory WHERE session_id = $1), 0)
              AND (NOT $3 OR turn_no < (SELECT max(turn_no) FROM workers.turns WHERE session_id = $1 AND superseded_by IS NULL))
            ORDER BY turn_no DESC LIMIT $2
            """, sessionId, rows, replaceLast);

    // The turn a replacing request replaces: the newest current one, whatever its status (a failed reply can be retried).
    private static void LoadLastTurn(RlsBatch batch, Guid sessionId) =>
        batch.Add(
            "SELECT turn_no, request_id, user_text FROM workers.turns WHERE session_id = $1 AND superseded_by IS NULL ORDER BY turn_no DESC LIMIT 1",
            sessionId);

    // Only forward: a summary covering fewer turns than the stored one never replaces it.
    private static void StoreMemory(RlsBatch batch, Turn turn, SessionMemory memory) =>
        batch.Add(
            """
            INSERT INTO workers.session_memory (session_id, owner_id, through_turn, summary, tokens) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (session_id) DO UPDATE SET through_turn = EXCLUDED.through_turn, summary = EXCLUDED.summary,
                tokens = EXCLUDED.tokens, updated_at = now()
            WHERE session_memory.through_turn < EXCLUDED.through_turn
            """, turn.SessionId, turn.OwnerId, memory.ThroughTurn, memory.Summary, memory.Tokens);

    // The fence: the turn counter moves only from the value this attempt read, and only while its lease epoch is current.
    private static NpgsqlBatchCommand AdvanceTurnCounterIfLeaseHeld(RlsBatch batch, Guid sessionId, long seenTurnSeq, PartitionLease lease,
        string? title) =>
        batch.Add(
            """
            UPDATE workers.sessions SET turn_seq = turn_seq + 1, last_active_at = now(),
                title = CASE WHEN title = '' AND $5::text IS NOT NULL THEN $5::text ELSE title END
            WHERE id = $1 AND turn_seq = $2
              AND EXISTS (SELECT 1 FROM workers.partition_leases WHERE partition = $3 AND epoch = $4)
            """, sessionId, seenTurnSeq, lease.Partition, lease.Epoch, title);

    private static void InsertTurn(RlsBatch batch, Turn turn) =>
        batch.Add(
            """
            INSERT INTO workers.turns (session_id, turn_no, owner_id, request_id, user_text, reply_text, status, error_code,
                prompt_tokens, completion_tokens, first_seq, last_seq, started_at, producer, tokens, provider, model, cached_tokens,
                cost_micros, tool_calls)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20::jsonb)
            """, turn.SessionId, turn.TurnNo, turn.OwnerId, turn.RequestId, turn.UserText, turn.ReplyText, turn.Status,
            turn.ErrorCode, turn.PromptTokens, turn.CompletionTokens, turn.FirstSeq, turn.LastSeq, turn.StartedAt, turn.Producer,
            turn.Tokens, turn.Provider, turn.Model, turn.CachedTokens, turn.CostMicros, turn.ToolCalls);

    // What the turn spent joins its user's day, and its reservation (if budgets are on) is released: the budget now
    // counts the real figures. In the commit, so a fenced-out attempt spends nothing.
    private static void SettleUsage(RlsBatch batch, Turn turn, bool releaseReservation)
    {
        batch.Add(
            """
            INSERT INTO workers.user_usage (owner_id, day, turns, prompt_tokens, completion_tokens, cached_tokens, cost_micros)
            VALUES ($1, (now() AT TIME ZONE 'UTC')::date, 1, $2, $3, $4, $5)
            ON CONFLICT (owner_id, day) DO UPDATE SET turns = user_usage.turns + 1,
                prompt_tokens = user_usage.prompt_tokens + EXCLUDED.prompt_tokens,
                completion_tokens = user_usage.completion_tokens + EXCLUDED.completion_tokens,
                cached_tokens = user_usage.cached_tokens + EXCLUDED.cached_tokens,
                cost_micros = user_usage.cost_micros + EXCLUDED.cost_micros
            """, turn.OwnerId, (long)turn.PromptTokens, (long)turn.CompletionTokens, (long)turn.CachedTokens, turn.CostMicros);
        if (releaseReservation)
        {
            batch.Add("DELETE FROM workers.usage_reservations WHERE owner_id = $1 AND session_id = $2 AND request_id = $3",
                turn.OwnerId, turn.SessionId, turn.RequestId);
        }
    }

    private static NpgsqlBatchCommand CompleteInbox(RlsBatch batch, Guid sessionId, Guid requestId, string status) =>
        batch.Add("UPDATE workers.inbox SET status = $3, updated_at = now() WHERE session_id = $1 AND request_id = $2 AND status = 'started'",
            sessionId, requestId, status);
}
