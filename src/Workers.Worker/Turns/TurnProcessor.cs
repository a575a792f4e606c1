using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Workers.Contracts;
using Workers.Core.Sessions;
using Workers.Core.Telemetry;
using Workers.Worker.Model;
using Workers.Worker.Ordering;

namespace Workers.Worker.Turns;

/// <summary>
/// One chat turn, start to ack: load the session as its owner (transaction 1), call the model with no transaction
/// open while reply events stream out, then persist the turn, the inbox row and the fencing check together
/// (transaction 2), publish the outcome and ack. Transient failures retry here, holding the session's lane.
/// </summary>
public sealed class TurnProcessor(
    TurnStore turns,
    ModelCall modelCall,
    TurnEvents events,
    ActiveTurns activeTurns,
    ChatModels models,
    Tools.McpToolServers toolServers,
    IOptions<ModelOptions> modelOptions,
    IOptions<WorkerOptions> workerOptions,
    WorkerMetrics metrics,
    ILogger<TurnProcessor> logger)
{
    private readonly ModelOptions _model = modelOptions.Value;
    private readonly WorkerOptions _worker = workerOptions.Value;

    public async Task ProcessAsync(ChatRequested request, PartitionDelivery delivery)
    {
        using var span = StartTurnSpan(request, delivery);
        long? failingSince = null;
        var counted = new StrongBox<bool>();
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await RunAsync(request, delivery, retried: attempt > 0, counted);
                return;
            }
            catch (Exception e) when (DatabaseFailover.Is(e) && delivery.Fenced)
            {
                // The lease went with the old primary: the partition's next owner runs this request again.
                logger.LogWarning("Turn {RequestId} of session {SessionId}: database failure ({Error}) after its lease was lost; left to the next owner",
                    request.RequestId, request.SessionId, DatabaseFailover.Describe(e));
                return;
            }
            catch (Exception e) when (DatabaseFailover.Is(e)
                                      && Stopwatch.GetElapsedTime(failingSince ??= Stopwatch.GetTimestamp()) < _worker.FailoverWindow)
            {
                // Held in place, so the session's lane waits too: its next turn cannot overtake this one. The pool's idle
                // connections go: each still leads to the old primary (directly, or through its node's PgBouncer, which
                // accepts them and fails their first query) or to a node that is a standby now; new ones look for the
                // primary again.
                turns.ForgetConnections();

                logger.LogWarning("Turn {RequestId} of session {SessionId}: database unavailable ({Error}), retry {Attempt}",
                    request.RequestId, request.SessionId, DatabaseFailover.Describe(e), attempt + 1);
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(2000, 100 * Math.Pow(2, Math.Min(attempt, 5)))));
            }
            catch (EventPublishTimeoutException e) when (attempt < _worker.TransientRetries && !delivery.Fenced)
            {
                // The bus has a new channel by now; the turn runs again, its events with new seqs (clients drop repeats),
                // or, if the commit went through, its final event is published again.
                logger.LogWarning("Turn {RequestId} of session {SessionId}: {Error}, retry {Attempt}",
                    request.RequestId, request.SessionId, e.Message, attempt + 1);
                await Task.Delay(TimeSpan.FromMilliseconds(200 * Math.Pow(2, attempt)));
            }
            catch (EventPublishTimeoutException e)
            {
                // Still no broker to publish to: not the request's fault, so it is not refused. Left unacked, it returns
                // (with everything behind it, in order) when the partition is taken again on a new connection.
                logger.LogError("Turn {RequestId} of session {SessionId}: {Error} after {Attempts} attempts; giving partition {Partition} up",
                    request.RequestId, request.SessionId, e.Message, attempt + 1, delivery.Lease.Partition);
                delivery.GiveUpPartition();
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
                metrics.Refused(e.Code);
                span?.SetStatus(ActivityStatusCode.Error, e.Code);
                await events.FailedAsync(request, 0, e.Code, e.Message);
                await delivery.AckAsync();
                return;
            }
            catch (Exception e)
            {
                // The type and the stack, not the message: an exception's message can quote the user's text.
                logger.LogError("Turn {RequestId} of session {SessionId} failed: {Error} {StackTrace}", request.RequestId,
                    request.SessionId, e.GetType().FullName, e.StackTrace);
                metrics.Refused(ErrorCodes.InternalError);
                span?.SetStatus(ActivityStatusCode.Error, e.GetType().Name);
                await TryKeepParkedAsync(request, ErrorCodes.InternalError, $"unexpected {e.GetType().Name}", delivery.DeliveryCount);
                await delivery.DeadLetterAsync(new DeadLetter(ErrorCodes.InternalError, $"unexpected {e.GetType().Name}",
                    request.SessionId, request.RequestId, request.UserId, e.GetType().FullName));
                await events.FailedAsync(request, 0, ErrorCodes.InternalError, "The reply failed; please send the message again.");
                await delivery.AckAsync();
                return;
            }
        }
    }

    private async Task RunAsync(ChatRequested request, PartitionDelivery delivery, bool retried, StrongBox<bool> counted)
    {
        var started = Stopwatch.GetTimestamp();
        var startedAt = DateTimeOffset.UtcNow;
        if (!string.IsNullOrEmpty(request.Model))
        {
            // A model this deployment lacks is refused before it is stored: the session keeps the one it had.
            models.Resolve(request.Model);
        }

        if (request.Tools is { } tools)
        {
            // Likewise a tool server it lacks.
            toolServers.Resolve(tools);
        }

        TurnStart session;
        using (WorkersTelemetry.Source.StartActivity("load session"))
        {
            session = await turns.StartAsync(request, counted.Value);
            counted.Value = true;
        }

        if (session.AlreadyProcessed)
        {
            await AckProcessedAsync(request, delivery, retried);
            return;
        }

        if (request.Text.Length == 0 && session.Replaces is { } replaced)
        {
            // Regenerate: the replaced turn's own message, asked again.
            request = request with { Text = replaced.UserText };
        }

        if (session.Attempts > _worker.MaxDeliveries)
        {
            // Classic queues carry no delivery count; the inbox counted the attempts that never finished.
            await ParkAsync(request, delivery, session);
            return;
        }

        metrics.TurnStarted();
        var reply = new TurnReply(request, session.FirstSeq, events, _model.DeltaInterval, _model.DeltaMaxChars, () => delivery.Fenced,
            session.Replaces?.RequestId);
        ModelCallResult result;
        Turn turn;
        bool committed;
        // Running until committed: a resuming client's progress query that came between the end of the stream and the
        // commit would hear "idle", read the database before the turn is in it, and lose the text streamed so far.
        using (var cancel = activeTurns.Start(reply))
        {
            try
            {
                result = await modelCall.StreamAsync(request, session, reply, started, cancel.Token);
                turn = new Turn
                {
                    SessionId = request.SessionId, TurnNo = session.TurnSeq + 1, OwnerId = request.UserId, RequestId = request.RequestId,
                    UserText = request.Text, ReplyText = reply.Text, ToolCalls = Tools.ToolCall.ListToJson(reply.ToolCalls), Status = result.Status, ErrorCode = result.ErrorCode,
                    PromptTokens = result.PromptTokens, CompletionTokens = result.CompletionTokens, Tokens = result.TurnTokens,
                    Provider = result.Usage.Provider, Model = result.Usage.Model, CachedTokens = result.Usage.CachedTokens,
                    CostMicros = result.Usage.CostMicros,
                    FirstSeq = reply.FirstSeq, LastSeq = reply.FinalSeq(), StartedAt = startedAt,
                    Producer = delivery.Properties.UserId,
                };
                using (WorkersTelemetry.Source.StartActivity("commit turn"))
                {
                    committed = await turns.CommitAsync(turn, session.TurnSeq, delivery.Lease, result.Memory, session.Replaces?.TurnNo);
                }
            }
            finally
            {
                activeTurns.Finish(reply);
            }
        }

        if (!committed)
        {
            // Another worker owns the partition now (or already committed this turn). Acking would drop a request
            // nobody persisted: leave it unacked and give the partition up, so the broker hands it, and everything
            // behind it, to the owner in order; the inbox there turns an already-committed one into a no-op.
            logger.LogWarning("Turn {RequestId} of session {SessionId} fenced out on partition {Partition} ({Withheld} events withheld): " +
                "giving the partition up", request.RequestId, request.SessionId, delivery.Lease.Partition, reply.Withheld);
            delivery.GiveUpPartition();
            return;
        }

        logger.LogDebug("Committed request {RequestId} as turn {TurnNo} of session {SessionId} on partition {Partition} (epoch {Epoch})",
            request.RequestId, turn.TurnNo, request.SessionId, delivery.Lease.Partition, delivery.Lease.Epoch);
        if (turn.Status == TurnStatus.Failed)
        {
            await delivery.DeadLetterAsync(new DeadLetter(ErrorCodes.ModelError, "model call failed after retries",
                request.SessionId, request.RequestId, request.UserId));
        }

        var elapsed = Stopwatch.GetElapsedTime(started);
        metrics.TurnEnded(turn.Status, turn.ErrorCode, elapsed, result.FirstTokenMs, turn.PromptTokens, turn.CompletionTokens);
        if (turn.Status == TurnStatus.Failed)
        {
            Activity.Current?.SetStatus(ActivityStatusCode.Error, turn.ErrorCode);
        }

        await events.FinalAsync(TurnFinalEvent.Of(turn, result.FirstTokenMs, elapsed.TotalMilliseconds));
        await delivery.AckAsync();
    }

    private async Task AckProcessedAsync(ChatRequested request, PartitionDelivery delivery, bool retried)
    {
        logger.LogInformation("Request {RequestId} of session {SessionId} already processed; acked without a new turn",
            request.RequestId, request.SessionId);
        if (delivery.Redelivered || retried)
        {
            // The broker redelivers only what was never acked: the worker may have died between the commit and
            // publishing the outcome. A retry here finds the same when the commit went through but its answer was lost
            // (a PgBouncer restart between COMMIT and its reply) or the outcome's publish failed. Publish it again, with
            // its original seq, so clients can drop a repeat; a request parked without a turn is told again as parked.
            if (await turns.FindOutcomeAsync(request) is { } turn)
            {
                await events.FinalAsync(TurnFinalEvent.Of(turn));
            }
            else
            {
                await events.FailedAsync(request, 0, ErrorCodes.Poisoned, "This message could not be processed and was set aside.");
            }
        }

        await delivery.AckAsync();
    }

    private async Task ParkAsync(ChatRequested request, PartitionDelivery delivery, TurnStart session)
    {
        logger.LogError("Parked request {RequestId} of session {SessionId} after {Attempts} attempts",
            request.RequestId, request.SessionId, session.Attempts);
        var reason = $"started {session.Attempts} times without completing; parked";
        metrics.Refused(ErrorCodes.Poisoned);
        await turns.ParkAsync(request, ErrorCodes.Poisoned, reason, session.Attempts);
        await delivery.DeadLetterAsync(new DeadLetter(ErrorCodes.Poisoned, reason, request.SessionId, request.RequestId, request.UserId));
        await events.FailedAsync(request, session.FirstSeq, ErrorCodes.Poisoned, "This message could not be processed and was set aside.");
        await delivery.AckAsync();
    }

    /// <summary>Keeps the text of a request that failed unexpectedly for an operator, if the database lets it: the failure
    /// may be the database itself, and the refusal must go out either way.</summary>
    private async Task TryKeepParkedAsync(ChatRequested request, string code, string reason, int attempts)
    {
        try
        {
            await turns.ParkAsync(request, code, reason, attempts);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException or ChatErrorException)
        {
            logger.LogWarning("Could not keep parked request {RequestId} of session {SessionId}: {Error}", request.RequestId,
                request.SessionId, e.GetType().Name);
        }
    }

    /// <summary>The span of one turn (a consumer span), child of the trace its request's <c>traceparent</c> header names.</summary>
    private static Activity? StartTurnSpan(ChatRequested request, PartitionDelivery delivery)
    {
        var activity = WorkersTelemetry.Source.StartActivity("chat turn", ActivityKind.Consumer,
            WorkersTelemetry.ParentFrom(delivery.Properties.Headers));
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag("messaging.system", "rabbitmq");
            activity.SetTag("messaging.operation.type", "process");
            activity.SetTag("messaging.destination.name", Partitioning.QueueName(delivery.Lease.Partition));
            activity.SetTag("messaging.message.id", delivery.Properties.MessageId);
            activity.SetTag(WorkersTelemetry.SessionIdTag, request.SessionId);
            activity.SetTag(WorkersTelemetry.RequestIdTag, request.RequestId);
            activity.SetTag("workers.partition.epoch", delivery.Lease.Epoch);
        }

        return activity;
    }

    private static bool IsTransient(Exception e) =>
        e is NpgsqlException { IsTransient: true } or TimeoutException
        || e is PostgresException { SqlState: PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected };
}
