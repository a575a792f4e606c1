using System.Text.Json;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using Workers.Contracts;
using Workers.Worker.Turns;

namespace Workers.Worker.Ordering;

/// <summary>
/// Consumes one partition queue on its own channel while this worker holds the partition's lease. Deliveries are
/// handed on in the order the broker sent them; stopping lets running turns finish and ack, leaves every request that
/// had not started unacked, and closes the channel, so the broker returns them to the next owner in order.
/// </summary>
public sealed class PartitionConsumer
{
    private readonly IChannel _channel;
    private readonly ILogger _logger;
    private readonly TimeSpan _publishTimeout;
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _inFlight;
    private volatile bool _stopping;
    private volatile bool _broken;

    private PartitionConsumer(PartitionLease lease, IChannel channel, TimeSpan publishTimeout, ILogger logger)
    {
        Lease = lease;
        _channel = channel;
        _publishTimeout = publishTimeout;
        _logger = logger;
    }

    /// <summary>The partition and the lease epoch this worker acquired; a turn's commit checks it is still current.</summary>
    public PartitionLease Lease { get; }

    public int Partition => Lease.Partition;

    /// <summary>Set once the partition is being handed over: requests not yet started must not start.</summary>
    public bool Stopping => _stopping;

    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>The channel closed under us, or a delivery could not be handled: the lease manager gives the partition
    /// up without draining, and the broker returns everything unacked, in order, to the next owner.</summary>
    public bool Broken => _broken || !_channel.IsOpen;

    /// <summary>Stops handing out this partition's requests; later ones in a lane are abandoned, not run out of order.</summary>
    internal void MarkBroken()
    {
        _broken = true;
        _stopping = true;
    }

    public static async Task<PartitionConsumer> StartAsync(
        IConnection connection, PartitionLease lease, ushort prefetch, TimeSpan publishTimeout,
        Func<PartitionDelivery, Task> onDelivery, ILogger logger, CancellationToken cancellationToken)
    {
        // Confirms on, so a copy published to the error queue is safely there before the original is acked.
        var channel = await connection.CreateChannelAsync(
            new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true),
            cancellationToken);
        await channel.BasicQosAsync(0, prefetch, global: false, cancellationToken);
        var partitionConsumer = new PartitionConsumer(lease, channel, publishTimeout, logger);
        var consumer = new AsyncEventingBasicConsumer(channel);
        // Deliveries of one channel are dispatched one at a time, so requests reach the lanes in queue order.
        consumer.ReceivedAsync += (_, e) =>
        {
            Interlocked.Increment(ref partitionConsumer._inFlight);
            // An oversized body is never copied: what can be read of its ids is read in place, for the refusal.
            var fits = e.Body.Length <= RequestParser.MaxBodyBytes;
            var delivery = new PartitionDelivery(partitionConsumer, e.DeliveryTag, fits ? e.Body.ToArray() : [],
                fits ? null : RequestParser.Oversized(e.Body.Span), e.BasicProperties, e.Redelivered);
            return onDelivery(delivery);
        };
        await channel.BasicConsumeAsync(
            Partitioning.QueueName(lease.Partition), autoAck: false, consumer, cancellationToken);
        return partitionConsumer;
    }

    internal async Task AckAsync(ulong deliveryTag)
    {
        try
        {
            await _channel.BasicAckAsync(deliveryTag, multiple: false);
        }
        catch (Exception e) when (e is RabbitMQ.Client.Exceptions.AlreadyClosedException or ObjectDisposedException)
        {
            // The channel closed under a running turn (drain timeout or broker loss): the broker requeues the
            // message and the inbox turns its redelivery into a no-op.
            _logger.LogWarning("Ack on partition {Partition} after its channel closed; the broker will redeliver", Partition);
        }
        finally
        {
            Done();
        }
    }

    internal void Abandon() => Done();

    /// <summary>Sends what may be kept of a refused or failed request to the error queue (ids and reason, in the body
    /// and in MassTransit's fault headers), with confirms, before the original is acked.</summary>
    internal async Task PublishToErrorQueueAsync(PartitionDelivery delivery, DeadLetter letter)
    {
        var headers = new Dictionary<string, object?>
        {
            ["MT-Fault-Code"] = letter.Code,
            ["MT-Fault-Message"] = letter.Reason,
            ["MT-Fault-ExceptionType"] = letter.ExceptionType ?? "Workers.RequestRefused",
            ["MT-Fault-Timestamp"] = DateTimeOffset.UtcNow.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
            ["MT-Reason"] = "fault",
            ["x-partition"] = Partition,
            ["x-delivery-count"] = delivery.DeliveryCount,
        };
        var properties = new BasicProperties
        {
            Persistent = true,
            ContentType = "application/json",
            MessageId = delivery.Properties.MessageId is { Length: <= 128 } id ? id : null,
            Headers = headers,
        };
        var body = JsonSerializer.SerializeToUtf8Bytes(new
        {
            letter.RequestId, letter.SessionId, letter.UserId, letter.Code, letter.Reason, letter.ExceptionType,
            Attempts = delivery.DeliveryCount, Partition, BodyBytes = delivery.Oversized is null ? delivery.Body.Length : (int?)null,
        }, JsonSerializerOptions.Web);
        // Bounded like every publish of a turn: a confirmation lost with a broken channel would hold the lane for ever.
        using var timeout = new CancellationTokenSource(_publishTimeout);
        await _channel.BasicPublishAsync("", Workers.Core.Messaging.RequestTopology.ErrorQueue, mandatory: false, properties, body, timeout.Token);
    }

    public async Task StopAsync(TimeSpan drainTimeout)
    {
        // No basic.cancel: on a quorum queue (3.10.8) a delivery already on its way to a cancelled consumer came back
        // behind newer messages of the same session (caught by the SIGKILL ordering test). Without a cancel, whatever
        // arrives now is left unacked and the channel's close returns all of it together, at the head, in order.
        _stopping = true;
        if (InFlight == 0)
        {
            _drained.TrySetResult();
        }

        var drained = await Task.WhenAny(_drained.Task, Task.Delay(drainTimeout)) == _drained.Task;
        if (!drained)
        {
            _logger.LogWarning("Partition {Partition}: {Count} turns still running after {Timeout}; closing its channel",
                Partition, InFlight, drainTimeout);
        }

        try
        {
            // Wait for the broker's close-ok, so the unacked requests are back in the queue before the lease is released.
            await _channel.CloseAsync();
        }
        catch (Exception e) when (e is RabbitMQ.Client.Exceptions.AlreadyClosedException or RabbitMQ.Client.Exceptions.OperationInterruptedException
                                       or IOException or ObjectDisposedException or TimeoutException)
        {
            _logger.LogDebug("Partition {Partition} channel was already closed", Partition);
        }

        await _channel.DisposeAsync();
    }

    private void Done()
    {
        if (Interlocked.Decrement(ref _inFlight) == 0 && _stopping)
        {
            _drained.TrySetResult();
        }
    }
}
