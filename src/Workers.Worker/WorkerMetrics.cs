using System.Diagnostics.Metrics;
using Workers.Core.Telemetry;
using Workers.Worker.Ordering;

namespace Workers.Worker;

/// <summary>
/// The worker's metrics (meter <c>Workers</c>, scraped at <c>/metrics</c>): turns by outcome, their duration and time to
/// first token, tokens, refusals, partitions owned and handed over, lanes and waiting requests. docs/operations.md
/// lists them with their Prometheus names.
/// </summary>
public sealed class WorkerMetrics
{
    private readonly Counter<long> _started;
    private readonly Counter<long> _ended;
    private readonly Counter<long> _refused;
    private readonly Counter<long> _handovers;
    private readonly Histogram<double> _duration;
    private readonly Histogram<double> _firstToken;
    private readonly Histogram<long> _tokens;

    public WorkerMetrics(IMeterFactory meters, IServiceProvider services)
    {
        var meter = meters.Create(WorkersTelemetry.Name);
        var seconds = new InstrumentAdvice<double> { HistogramBucketBoundaries = TelemetryRegistration.SecondsBuckets };
        _started = meter.CreateCounter<long>("workers.turns.started", "{turn}", "Turns that began running (a redelivery that already committed is not one)");
        _ended = meter.CreateCounter<long>("workers.turns.ended", "{turn}", "Turns persisted, by workers.turn.status and error.type");
        _refused = meter.CreateCounter<long>("workers.requests.refused", "{request}", "Requests refused without a turn, by error.type");
        _handovers = meter.CreateCounter<long>("workers.partitions.handovers", "{partition}", "Partitions taken (direction=acquired) and given up (released)");
        _duration = meter.CreateHistogram("workers.turn.duration", "s", "From the turn's start to its commit, by workers.turn.status", advice: seconds);
        _firstToken = meter.CreateHistogram("workers.turn.time_to_first_token", "s", "From the turn's start to the model's first text", advice: seconds);
        _tokens = meter.CreateHistogram<long>("gen_ai.client.token.usage", "{token}", "Tokens per turn, by gen_ai.token.type (input, output)");
        // Resolved at collection time: the lease manager and the lanes are built after this (they record into it).
        meter.CreateObservableGauge("workers.partitions.owned", () => services.GetRequiredService<PartitionLeaseManager>().Owned.Count,
            "{partition}", "Partitions this worker consumes now");
        meter.CreateObservableGauge("workers.lanes.active", () => services.GetRequiredService<SessionLanes>().Depth().Sessions,
            "{session}", "Sessions with a request running or waiting in this worker");
        meter.CreateObservableGauge("workers.lanes.waiting", () => services.GetRequiredService<SessionLanes>().Depth().Waiting,
            "{request}", "Requests waiting behind their session's running turn");
    }

    public void TurnStarted() => _started.Add(1);

    public void TurnEnded(string status, string? errorCode, TimeSpan duration, double firstTokenMs, int promptTokens, int completionTokens)
    {
        var statusTag = new KeyValuePair<string, object?>("workers.turn.status", status);
        _ended.Add(1, statusTag, new KeyValuePair<string, object?>(WorkersTelemetry.ErrorTypeTag, errorCode));
        _duration.Record(duration.TotalSeconds, statusTag);
        if (firstTokenMs > 0)
        {
            _firstToken.Record(firstTokenMs / 1000);
        }

        _tokens.Record(promptTokens, new KeyValuePair<string, object?>("gen_ai.token.type", "input"));
        _tokens.Record(completionTokens, new KeyValuePair<string, object?>("gen_ai.token.type", "output"));
    }

    public void Refused(string code) => _refused.Add(1, new KeyValuePair<string, object?>(WorkersTelemetry.ErrorTypeTag, code));

    public void PartitionAcquired() => _handovers.Add(1, new KeyValuePair<string, object?>("direction", "acquired"));

    public void PartitionsReleased(int count) => _handovers.Add(count, new KeyValuePair<string, object?>("direction", "released"));
}
