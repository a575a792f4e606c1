using System.Diagnostics;
using System.Threading.RateLimiting;
using MassTransit;
using Microsoft.Extensions.Options;
using Workers.Contracts;
using Workers.Core.Sessions;
using Workers.Core.Telemetry;
using Workers.Notifier.Sessions;

namespace Workers.Notifier.Sending;

/// <summary>
/// The ingress: a user's message becomes a <see cref="ChatRequested"/> on the partitioned exchange, with the user id
/// from the token, after the session's ownership and the user's limits were checked. A refusal publishes nothing.
/// </summary>
public sealed class MessageSender(
    SessionLifecycle sessions, IBus bus, TurnsInFlight turnsInFlight, IOptions<LimitOptions> options, ILogger<MessageSender> logger)
    : IDisposable
{
    private readonly PartitionedRateLimiter<string> _rate = PartitionedRateLimiter.Create<string, string>(user =>
        RateLimitPartition.GetTokenBucketLimiter(user, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = options.Value.MessagesPerMinute,
            TokensPerPeriod = 1,
            ReplenishmentPeriod = TimeSpan.FromMinutes(1) / options.Value.MessagesPerMinute,
            QueueLimit = 0,
        }));

    public Task<Guid> SendAsync(string userId, Guid sessionId, string? text, Guid? requestId, CancellationToken cancellationToken) =>
        PublishRequestAsync(userId, sessionId, text, requestId, replaceLast: false, cancellationToken);

    /// <summary>Regenerate (<paramref name="text"/> null: the last message asked again) or edit (a new text): a turn that
    /// replaces the session's last one, run by the worker in the session's order like any message.</summary>
    public Task<Guid> ReplaceLastAsync(string userId, Guid sessionId, string? text, Guid? requestId, CancellationToken cancellationToken) =>
        text is not null && string.IsNullOrWhiteSpace(text)
            ? throw new ChatErrorException(ErrorCodes.InvalidRequest, "text must not be empty (to ask the last message again, regenerate)")
            : PublishRequestAsync(userId, sessionId, text ?? "", requestId, replaceLast: true, cancellationToken);

    private async Task<Guid> PublishRequestAsync(string userId, Guid sessionId, string? text, Guid? requestId, bool replaceLast,
        CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(text) && !replaceLast)
        {
            throw new ChatErrorException(ErrorCodes.InvalidRequest, "text must not be empty");
        }

        text ??= "";

        if (text.Length > ChatLimits.MaxTextLength)
        {
            throw new ChatErrorException(ErrorCodes.TooLarge, $"text is {text.Length} characters, more than {ChatLimits.MaxTextLength}");
        }

        await sessions.GetAsync(userId, sessionId, cancellationToken);
        if (turnsInFlight.Count(userId) >= options.Value.ConcurrentTurns)
        {
            throw new ChatErrorException(ErrorCodes.RateLimited,
                $"{options.Value.ConcurrentTurns} replies are already running; wait for one to finish");
        }

        using var lease = _rate.AttemptAcquire(userId);
        if (!lease.IsAcquired)
        {
            throw new ChatErrorException(ErrorCodes.RateLimited, $"more than {options.Value.MessagesPerMinute} messages a minute");
        }

        var request = new ChatRequested
        {
            RequestId = requestId ?? NewId.NextGuid(), SessionId = sessionId, UserId = userId, Text = text, SentAt = DateTimeOffset.UtcNow,
            ReplaceLast = replaceLast ? true : null,
        };
        turnsInFlight.Sent(userId, request.RequestId);
        // The trace's first message: the worker's turn and every reply event continue it (traceparent header).
        using var span = WorkersTelemetry.Source.StartActivity("publish chat request", ActivityKind.Producer);
        span?.SetTag("messaging.system", "rabbitmq");
        span?.SetTag("messaging.operation.type", "send");
        span?.SetTag(WorkersTelemetry.SessionIdTag, sessionId);
        span?.SetTag(WorkersTelemetry.RequestIdTag, request.RequestId);
        try
        {
            await PublishAsync(request, sessionId, request.RequestId, durable: true, cancellationToken);
        }
        catch
        {
            turnsInFlight.Ended(userId, request.RequestId);
            throw;
        }

        logger.LogInformation("Request {RequestId} for session {SessionId} published", request.RequestId, sessionId);
        return request.RequestId;
    }

    public async Task CancelAsync(string userId, Guid sessionId, Guid requestId, CancellationToken cancellationToken)
    {
        await sessions.GetAsync(userId, sessionId, cancellationToken);
        await PublishAsync(new CancelTurn { SessionId = sessionId, RequestId = requestId, UserId = userId }, sessionId, requestId,
            durable: false, cancellationToken);
    }

    // Bounded: RabbitMQ.Client 7.2.2 can lose the confirmation of a publish racing its channel's shutdown (a broker node
    // killed), and the caller would wait for it forever.
    private async Task PublishAsync<T>(T message, Guid sessionId, Guid requestId, bool durable, CancellationToken cancellationToken)
        where T : class
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(options.Value.PublishTimeout);
        try
        {
            await bus.Publish(message, c => c.Durable = durable, timeout.Token);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning("{Type} {RequestId} of session {SessionId} not confirmed by the broker within {Timeout}",
                typeof(T).Name, requestId, sessionId, options.Value.PublishTimeout);
            throw new ChatErrorException(ErrorCodes.Unavailable,
                $"the broker did not confirm this within {options.Value.PublishTimeout.TotalSeconds:0.#} s; send it again with the same requestId ({requestId}): it runs once");
        }
    }

    public void Dispose() => _rate.Dispose();
}
