using System.Diagnostics;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;
using Microsoft.SemanticKernel.Connectors.OpenAI;
using Npgsql;
using Workers.Contracts;
using Workers.Core.Sessions;
using Workers.Worker.Model;
using Workers.Worker.Partitions;
using Workers.Worker.Tools;

namespace Workers.Worker.Turns;

/// <summary>
/// One chat turn, start to ack: load the session as its owner (transaction 1), call the model with no transaction
/// open while reply events stream out, then persist the turn, the inbox row and the fencing check together
/// (transaction 2), publish the outcome and ack. Transient failures retry here, holding the session's lane.
/// </summary>
public sealed class TurnProcessor(
    SessionStore store,
    IChatCompletionService model,
    TurnEvents events,
    ActiveTurns activeTurns,
    IOptions<ModelOptions> modelOptions,
    IOptions<WorkerOptions> workerOptions,
    ILogger<TurnProcessor> logger)
{
    // Each attempt reserves this many event numbers, so numbers only grow even when a crashed attempt is re-run.
    internal const long SeqBlock = 1 << 20;
    private const int HistoryRows = 100;
    private readonly ModelOptions _model = modelOptions.Value;
    private readonly WorkerOptions _worker = workerOptions.Value;

    public async Task ProcessAsync(ChatRequested request, PartitionDelivery delivery)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await RunAsync(request, delivery);
                return;
            }
            catch (Exception e) when (IsTransient(e) && attempt < _worker.TransientRetries)
            {
                logger.LogWarning("Turn {RequestId} of session {SessionId}: transient failure ({Error}), retry {Attempt}",
                    request.RequestId, request.SessionId, e.GetType().Name, attempt + 1);
                await Task.Delay(TimeSpan.FromMilliseconds(200 * Math.Pow(2, attempt)));
            }
            catch (ChatErrorException e)
            {
                logger.LogInformation("Turn {RequestId} of session {SessionId} refused: {Code}", request.RequestId, request.SessionId, e.Code);
                await events.FailedAsync(request, 0, e.Code, e.Message);
                await delivery.AckAsync();
                return;
            }
            catch (Exception e)
            {
                logger.LogError(e, "Turn {RequestId} of session {SessionId} failed", request.RequestId, request.SessionId);
                await delivery.Source.PublishToErrorQueueAsync(delivery, ErrorCodes.InternalError, e.Message, e);
                await events.FailedAsync(request, 0, ErrorCodes.InternalError, "The reply failed; please send the message again.");
                await delivery.AckAsync();
                return;
            }
        }
    }

    private async Task RunAsync(ChatRequested request, PartitionDelivery delivery)
    {
        var clock = Stopwatch.StartNew();
        var startedAt = DateTimeOffset.UtcNow;
        var loaded = await LoadAsync(request);
        if (loaded is null)
        {
            logger.LogInformation("Request {RequestId} of session {SessionId} already processed; acked without a new turn",
                request.RequestId, request.SessionId);
            if (delivery.Redelivered)
            {
                // The broker redelivers only what was never acked: the worker may have died between the commit and
                // publishing the outcome. Publish it again, with its original seq, so clients can drop a repeat.
                await RepublishOutcomeAsync(request);
            }

            await delivery.AckAsync();
            return;
        }

        if (loaded.Attempts > _worker.MaxDeliveries)
        {
            // Classic queues carry no delivery count; the inbox counted the attempts that never finished.
            await ParkAsync(request, delivery, loaded);
            return;
        }

        var reply = new TurnReply(request, loaded.FirstSeq, events, _model.DeltaInterval, _model.DeltaMaxChars);
        using var cancel = activeTurns.Start(reply);
        var outcome = TurnStatus.Complete;
        string? errorCode = null;
        int promptTokens = 0, completionTokens = 0;
        double firstTokenMs = 0;
        try
        {
            await reply.StartedAsync(CancellationToken.None);
            var kernel = new Kernel();
            kernel.Plugins.AddFromObject(new SessionNotesPlugin(store, request.UserId, request.SessionId), "notes");
            kernel.FunctionInvocationFilters.Add(new ToolEventFilter(reply));
            var settings = new OpenAIPromptExecutionSettings { FunctionChoiceBehavior = FunctionChoiceBehavior.Auto() };
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel.Token);
            timeout.CancelAfter(_model.CallTimeout);
            await foreach (var chunk in model.GetStreamingChatMessageContentsAsync(
                TurnHistory.Build(_model.SystemPrompt, loaded.History, request.Text, _model.HistoryBudgetChars), settings, kernel, timeout.Token))
            {
                if (firstTokenMs == 0 && !string.IsNullOrEmpty(chunk.Content))
                {
                    firstTokenMs = clock.Elapsed.TotalMilliseconds;
                }

                await reply.AppendAsync(chunk.Content, CancellationToken.None);
                (promptTokens, completionTokens) = Usage(chunk.Metadata) ?? (promptTokens, completionTokens);
            }

            await reply.FlushAsync(CancellationToken.None);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            outcome = TurnStatus.Cancelled;
            errorCode = ErrorCodes.Cancelled;
            await reply.FlushAsync(CancellationToken.None);
        }
        catch (Exception e) when (e is HttpOperationException or OperationCanceledException or HttpRequestException
                                       or System.ClientModel.ClientResultException or IOException or TimeoutException)
        {
            // The client already retried timeouts, 429 and 5xx with backoff; text streamed before a break is kept.
            logger.LogWarning("Model call of turn {RequestId} in session {SessionId} failed: {Error}",
                request.RequestId, request.SessionId, e.GetType().Name);
            outcome = TurnStatus.Failed;
            errorCode = ErrorCodes.ModelError;
            await reply.FlushAsync(CancellationToken.None);
        }
        finally
        {
            activeTurns.Finish(reply);
        }

        var finalSeq = reply.NextSeq();
        var turn = new Turn
        {
            SessionId = request.SessionId,
            TurnNo = loaded.TurnSeq + 1,
            OwnerId = request.UserId,
            RequestId = request.RequestId,
            UserText = request.Text,
            ReplyText = reply.Text,
            Status = outcome,
            ErrorCode = errorCode,
            PromptTokens = promptTokens,
            CompletionTokens = completionTokens == 0 ? EstimateTokens(reply.Text) : completionTokens,
            FirstSeq = reply.FirstSeq,
            LastSeq = finalSeq,
            StartedAt = startedAt,
        };
        if (!await CommitAsync(turn, loaded.TurnSeq, delivery.Source))
        {
            // Another worker owns the partition now (or already committed this turn). Acking would drop a request
            // nobody persisted: leave it unacked and give the partition up, so the broker hands it, and everything
            // behind it, to the owner in order; the inbox there turns an already-committed one into a no-op.
            logger.LogWarning("Turn {RequestId} of session {SessionId} fenced out on partition {Partition}: giving the partition up",
                request.RequestId, request.SessionId, delivery.Source.Partition);
            delivery.Source.MarkBroken();
            delivery.Abandon();
            return;
        }

        logger.LogDebug("Committed request {RequestId} as turn {TurnNo} of session {SessionId} on partition {Partition} (epoch {Epoch})",
            request.RequestId, turn.TurnNo, request.SessionId, delivery.Source.Partition, delivery.Source.Epoch);
        switch (outcome)
        {
            case TurnStatus.Complete:
                await events.CompletedAsync(new TurnCompleted
                {
                    SessionId = request.SessionId, RequestId = request.RequestId, UserId = request.UserId, Seq = finalSeq,
                    Text = turn.ReplyText, PromptTokens = turn.PromptTokens, CompletionTokens = turn.CompletionTokens,
                    FirstTokenMs = firstTokenMs, TotalMs = clock.Elapsed.TotalMilliseconds,
                });
                break;
            case TurnStatus.Cancelled:
                await events.CancelledAsync(request, finalSeq, turn.ReplyText);
                break;
            default:
                await delivery.Source.PublishToErrorQueueAsync(delivery, ErrorCodes.ModelError, "model call failed after retries", null);
                await events.FailedAsync(request, finalSeq, ErrorCodes.ModelError,
                    "The model did not answer; please try again.");
                break;
        }

        await delivery.AckAsync();
    }

    private async Task RepublishOutcomeAsync(ChatRequested request)
    {
        Turn? turn;
        await using (var scope = await store.BeginAsync(request.UserId, request.SessionId, CancellationToken.None))
        {
            turn = await scope.Db.Turns.AsNoTracking().FirstOrDefaultAsync(t => t.RequestId == request.RequestId);
        }

        switch (turn?.Status)
        {
            case TurnStatus.Complete:
                await events.CompletedAsync(new TurnCompleted
                {
                    SessionId = request.SessionId, RequestId = request.RequestId, UserId = request.UserId, Seq = turn.LastSeq,
                    Text = turn.ReplyText, PromptTokens = turn.PromptTokens, CompletionTokens = turn.CompletionTokens,
                    FirstTokenMs = 0, TotalMs = (turn.CompletedAt - turn.StartedAt).TotalMilliseconds,
                });
                break;
            case TurnStatus.Cancelled:
                await events.CancelledAsync(request, turn.LastSeq, turn.ReplyText);
                break;
            case TurnStatus.Failed:
                await events.FailedAsync(request, turn.LastSeq, turn.ErrorCode ?? ErrorCodes.ModelError, "The model did not answer; please try again.");
                break;
        }
    }

    private async Task ParkAsync(ChatRequested request, PartitionDelivery delivery, LoadedSession loaded)
    {
        logger.LogError("Parked request {RequestId} of session {SessionId} after {Attempts} attempts",
            request.RequestId, request.SessionId, loaded.Attempts);
        await using (var scope = await store.BeginAsync(request.UserId, request.SessionId, CancellationToken.None))
        {
            await using var mark = scope.Command(
                "UPDATE workers.inbox SET status = 'failed', updated_at = now() WHERE session_id = $1 AND request_id = $2");
            mark.Parameters.AddWithValue(request.SessionId);
            mark.Parameters.AddWithValue(request.RequestId);
            await mark.ExecuteNonQueryAsync();
            await scope.CommitAsync(CancellationToken.None);
        }

        await delivery.Source.PublishToErrorQueueAsync(delivery, ErrorCodes.Poisoned,
            $"started {loaded.Attempts} times without completing; parked", null);
        await events.FailedAsync(request, loaded.FirstSeq, ErrorCodes.Poisoned, "This message could not be processed and was set aside.");
        await delivery.AckAsync();
    }

    /// <summary>Transaction 1. Returns null when the request was already processed.</summary>
    private async Task<LoadedSession?> LoadAsync(ChatRequested request)
    {
        await using var scope = await store.BeginAsync(request.UserId, request.SessionId, CancellationToken.None, deferContext: true);
        await using var batch = scope.Batch(
            // A first request for an unknown session creates it for its user; someone else's id stays theirs
            // (DO NOTHING), and the UPDATE below then finds no row visible to this user.
            ("INSERT INTO workers.sessions (id, owner_id) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                [request.SessionId, request.UserId]),
            // Only the event counter here (not indexed, so the row update stays HOT); activity is stamped at commit.
            ("UPDATE workers.sessions SET event_seq = event_seq + $2 WHERE id = $1 RETURNING turn_seq, event_seq - $2",
                [request.SessionId, SeqBlock]),
            ("""
             INSERT INTO workers.inbox (session_id, request_id, owner_id, status) VALUES ($1, $2, $3, 'started')
             ON CONFLICT (session_id, request_id) DO UPDATE SET attempts = inbox.attempts + 1, updated_at = now()
             RETURNING status, attempts
             """, [request.SessionId, request.RequestId, request.UserId]),
            ("SELECT user_text, reply_text FROM workers.turns WHERE session_id = $1 AND status <> 'failed' ORDER BY turn_no DESC LIMIT $2",
                [request.SessionId, HistoryRows]));
        try
        {
            await using var reader = await batch.ExecuteReaderAsync();
            await reader.NextResultAsync(); // past the settings, which rode first in this batch
            if (!await reader.ReadAsync())
            {
                throw ChatErrorException.SessionNotFound();
            }

            var turnSeq = reader.GetInt64(0);
            var firstSeq = reader.GetInt64(1) + 1;
            await reader.NextResultAsync();
            await reader.ReadAsync();
            var status = reader.GetString(0);
            var attempts = reader.GetInt32(1);
            await reader.NextResultAsync();
            var history = new List<(string User, string Reply)>();
            while (await reader.ReadAsync())
            {
                history.Add((reader.GetString(0), reader.GetString(1)));
            }

            await reader.DisposeAsync();
            if (status != TurnStatus.Started)
            {
                return null;
            }

            await scope.CommitAsync(CancellationToken.None);
            history.Reverse();
            return new LoadedSession(turnSeq, firstSeq, attempts, history);
        }
        catch (PostgresException e) when (OwnershipConflicts.Reveal(e))
        {
            throw ChatErrorException.SessionNotFound();
        }
    }

    /// <summary>Transaction 2: the turn, its inbox row and the fencing check commit together or not at all.</summary>
    private async Task<bool> CommitAsync(Turn turn, long seenTurnSeq, PartitionConsumer partition)
    {
        await using var scope = await store.BeginAsync(turn.OwnerId, turn.SessionId, CancellationToken.None, deferContext: true);
        await using var batch = scope.Batch(
            ("""
             UPDATE workers.sessions SET turn_seq = turn_seq + 1, last_active_at = now()
             WHERE id = $1 AND turn_seq = $2
               AND EXISTS (SELECT 1 FROM workers.partition_leases WHERE partition = $3 AND epoch = $4)
             """, [turn.SessionId, seenTurnSeq, partition.Partition, partition.Epoch]),
            ("""
             INSERT INTO workers.turns (session_id, turn_no, owner_id, request_id, user_text, reply_text, status, error_code,
                 prompt_tokens, completion_tokens, first_seq, last_seq, started_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             """, [turn.SessionId, turn.TurnNo, turn.OwnerId, turn.RequestId, turn.UserText, turn.ReplyText, turn.Status,
                 (object?)turn.ErrorCode ?? DBNull.Value, turn.PromptTokens, turn.CompletionTokens, turn.FirstSeq, turn.LastSeq,
                 turn.StartedAt]),
            ("UPDATE workers.inbox SET status = $3, updated_at = now() WHERE session_id = $1 AND request_id = $2 AND status = 'started'",
                [turn.SessionId, turn.RequestId, turn.Status]));
        try
        {
            await batch.ExecuteNonQueryAsync();
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            return false;
        }

        // Counted from the end: the settings went first in the same batch.
        if (batch.BatchCommands[^3].RecordsAffected != 1 || batch.BatchCommands[^1].RecordsAffected != 1)
        {
            return false;
        }

        await scope.CommitAsync(CancellationToken.None);
        return true;
    }

    /// <summary>Token counts from the last chunk: the offline model's own keys, or the OpenAI connector's usage.</summary>
    private static (int Prompt, int Completion)? Usage(IReadOnlyDictionary<string, object?>? metadata) =>
        metadata switch
        {
            { } m when m.TryGetValue("PromptTokens", out var p) && p is int prompt && m.TryGetValue("CompletionTokens", out var c)
                && c is int completion => (prompt, completion),
            { } m when m.TryGetValue("Usage", out var u) && u is OpenAI.Chat.ChatTokenUsage usage =>
                (usage.InputTokenCount, usage.OutputTokenCount),
            _ => null,
        };

    private static int EstimateTokens(string text) => (text.Length + 3) / 4;

    private static bool IsTransient(Exception e) =>
        e is NpgsqlException { IsTransient: true } or TimeoutException
        || e is PostgresException { SqlState: PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected };

    private sealed record LoadedSession(long TurnSeq, long FirstSeq, int Attempts, IReadOnlyList<(string User, string Reply)> History);
}
