using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Workers.Contracts;
using Workers.Worker.Turns;

namespace Workers.Worker.Ordering;

/// <summary>
/// First stop of every delivery, in queue order: refuse what is malformed, over-delivered or over the session's
/// waiting limit (once, with a reason, never retried), and put the rest in its session's lane.
/// </summary>
public sealed class PartitionDispatcher(
    SessionLanes lanes, TurnProcessor processor, TurnStore turns, TurnEvents events, IOptions<WorkerOptions> options,
    WorkerMetrics metrics, ILogger<PartitionDispatcher> logger)
{
    private readonly int _maxDeliveries = options.Value.MaxDeliveries;

    public async Task DispatchAsync(PartitionDelivery delivery)
    {
        try
        {
            await RouteAsync(delivery);
        }
        catch (Exception e)
        {
            // A refusal that cannot be published or acked: leave it unacked and stop this partition here, so nothing
            // behind it runs first; the broker returns it, in order, to the next owner.
            logger.LogError(e, "Delivery on partition {Partition} could not be routed; giving the partition up", delivery.Lease.Partition);
            delivery.GiveUpPartition();
        }
    }

    private async Task RouteAsync(PartitionDelivery delivery)
    {
        var parsed = delivery.Oversized ?? RequestParser.Parse(delivery.Body);
        if (parsed.Request is null)
        {
            logger.LogWarning("Refused a malformed request {RequestId} of session {SessionId} on partition {Partition}: {Code}",
                parsed.RequestId, parsed.SessionId, delivery.Lease.Partition, parsed.Code);
            await RefuseAsync(delivery, parsed.SessionId, parsed.RequestId, parsed.UserId, parsed.Code!, parsed.Reason!, null);
            return;
        }

        var request = parsed.Request;
        if (string.IsNullOrEmpty(delivery.Properties.UserId))
        {
            // The broker checks a user-id against the publisher's login, so it says which producer asserted this userId;
            // without it the request could not be traced to anyone, so it is not run.
            logger.LogWarning("Refused request {RequestId} of session {SessionId} on partition {Partition}: no user-id property",
                request.RequestId, request.SessionId, delivery.Lease.Partition);
            await RefuseAsync(delivery, request.SessionId, request.RequestId, request.UserId, ErrorCodes.InvalidRequest,
                "the request has no AMQP user-id property (the publishing login); publish it with user-id set", null);
            return;
        }

        logger.LogDebug("Delivery of request {RequestId} in session {SessionId} on partition {Partition} (epoch {Epoch}, count {Count})",
            request.RequestId, request.SessionId, delivery.Lease.Partition, delivery.Lease.Epoch, delivery.DeliveryCount);
        if (delivery.DeliveryCount > _maxDeliveries)
        {
            logger.LogError("Parked request {RequestId} of session {SessionId}: delivered {Count} times", request.RequestId,
                request.SessionId, delivery.DeliveryCount);
            var reason = $"delivered {delivery.DeliveryCount} times without completing; parked";
            await turns.ParkAsync(request, ErrorCodes.Poisoned, reason, delivery.DeliveryCount);
            await RefuseAsync(delivery, request.SessionId, request.RequestId, request.UserId, ErrorCodes.Poisoned, reason, null);
            return;
        }

        var item = new LaneItem(delivery, () => processor.ProcessAsync(request, delivery));
        if (!lanes.TryEnqueue(request.SessionId, item))
        {
            logger.LogWarning("Session {SessionId} busy: refused request {RequestId}", request.SessionId, request.RequestId);
            metrics.Refused(ErrorCodes.SessionBusy);
            await events.FailedAsync(request, 0, ErrorCodes.SessionBusy,
                "Too many messages are waiting in this session; send again when the current reply is done.");
            await delivery.AckAsync();
        }
    }

    /// <summary>Error queue first, then the session is told, then the ack: a crash in between repeats, never loses.</summary>
    internal async Task RefuseAsync(
        PartitionDelivery delivery, Guid? sessionId, Guid? requestId, string? userId, string code, string reason, Exception? exception)
    {
        metrics.Refused(code);
        await delivery.DeadLetterAsync(new DeadLetter(code, reason, sessionId, requestId, userId, exception?.GetType().FullName));
        if (sessionId is { } session && userId is not null)
        {
            await events.FailedAsync(session, requestId ?? Guid.Empty, userId, 0, code, SafeMessage(code, reason));
        }

        await delivery.AckAsync();
    }

    private static string SafeMessage(string code, string reason) => code switch
    {
        ErrorCodes.InvalidRequest or ErrorCodes.TooLarge => reason,
        ErrorCodes.Poisoned => "This message could not be processed and was set aside.",
        _ => "The message could not be processed.",
    };
}
