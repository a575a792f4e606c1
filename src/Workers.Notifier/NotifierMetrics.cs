using System.Diagnostics.Metrics;
using Workers.Core.Telemetry;
using Workers.Notifier.Chat;

namespace Workers.Notifier;

/// <summary>
/// The notifier's metrics (meter <c>Workers</c>, scraped at <c>/metrics</c>), besides ASP.NET Core's own
/// (<c>signalr.server.active_connections</c>, HTTP durations): events received and waiting in its broker queue, delivery
/// latency from the worker's publish to the write on the client's socket, watched sessions and subscriptions, bytes
/// waiting in outboxes, clients closed for not reading, refusals by code. docs/operations.md lists them with their Prometheus names.
/// </summary>
public sealed class NotifierMetrics
{
    private readonly Counter<long> _events;
    private readonly Counter<long> _refused;
    private readonly Counter<long> _slowClients;
    private readonly Histogram<double> _deliveryLatency;

    public NotifierMetrics(IMeterFactory meters, IServiceProvider services)
    {
        var meter = meters.Create(WorkersTelemetry.Name);
        _events = meter.CreateCounter<long>("workers.notifier.events.received", "{event}", "Reply events this notifier received, by workers.event.type");
        _refused = meter.CreateCounter<long>("workers.requests.refused", "{request}", "Hub calls and requests refused, by error.type");
        _slowClients = meter.CreateCounter<long>("workers.notifier.slow_clients.disconnected", "{connection}",
            "Connections closed because their outbound queue passed its bound (the client was not reading)");
        _deliveryLatency = meter.CreateHistogram("workers.notifier.delivery.latency", "s",
            "From the worker's publish (sentAt) to the event's write on the client's connection",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = TelemetryRegistration.SecondsBuckets });
        // Resolved at collection time: the subscriptions are built after this (their outboxes record into it).
        meter.CreateObservableGauge("workers.notifier.sessions.watched", () => services.GetRequiredService<SessionSubscriptions>().Counts().Sessions,
            "{session}", "Sessions at least one connection of this notifier watches (each routed to it)");
        meter.CreateObservableGauge("workers.notifier.subscriptions", () => services.GetRequiredService<SessionSubscriptions>().Counts().Subscriptions,
            "{subscription}", "Connection-session subscriptions");
        meter.CreateObservableGauge("workers.notifier.event_queue.ready",
            () => services.GetRequiredService<SessionRoutes>().QueueReady() is { } ready ? [new Measurement<long>(ready)] : Array.Empty<Measurement<long>>(),
            "{message}", "Events waiting in this notifier's broker queue (sampled at most every 2 s)");
        meter.CreateObservableGauge("workers.notifier.outbox.queued_bytes", () => services.GetRequiredService<SessionSubscriptions>().Counts().QueuedBytes,
            "By", "Event bytes waiting in connections' outbound queues");
    }

    public void EventReceived(string type) => _events.Add(1, new KeyValuePair<string, object?>("workers.event.type", type));

    public void Refused(string code) => _refused.Add(1, new KeyValuePair<string, object?>(WorkersTelemetry.ErrorTypeTag, code));

    public void SlowClientDisconnected() => _slowClients.Add(1);

    public void Delivered(DateTime sentAt) => _deliveryLatency.Record(Math.Max(0, (DateTime.UtcNow - sentAt).TotalSeconds));
}
