using System.Diagnostics;
using System.Text;

namespace Workers.Core.Telemetry;

/// <summary>
/// The system's own spans and metrics, and the W3C trace context on AMQP messages. A producer sets <c>traceparent</c>
/// (and <c>tracestate</c>) as message headers; every message this system publishes carries the current span's, so one
/// trace runs from the hub call or the producer's publish through the worker's turn to each reply event's delivery.
/// </summary>
public static class WorkersTelemetry
{
    /// <summary>The name of the <see cref="ActivitySource"/> and of the meter.</summary>
    public const string Name = "Workers";

    public const string TraceParentHeader = "traceparent";
    public const string TraceStateHeader = "tracestate";

    // Attribute names: ours under "workers.", the rest from the OpenTelemetry semantic conventions.
    public const string SessionIdTag = "workers.session.id";
    public const string RequestIdTag = "workers.request.id";
    public const string ErrorTypeTag = "error.type";

    public static readonly ActivitySource Source = new(Name);

    /// <summary>The parent a message's headers name, or default (a new trace) when they name none or a malformed one.
    /// AMQP delivers header strings as bytes; MassTransit hands them over as strings.</summary>
    public static ActivityContext ParentFrom(IDictionary<string, object?>? headers)
    {
        if (headers is null || !headers.TryGetValue(TraceParentHeader, out var parent))
        {
            return default;
        }

        headers.TryGetValue(TraceStateHeader, out var state);
        return ParentFrom(Text(parent), Text(state));
    }

    public static ActivityContext ParentFrom(string? traceParent, string? traceState) =>
        ActivityContext.TryParse(traceParent, traceState, isRemote: true, out var context) ? context : default;

    /// <summary>The W3C header pair of the current span, for a message being published; false when no span runs.</summary>
    public static bool TryCurrent(out string traceParent, out string? traceState)
    {
        if (Activity.Current is { IdFormat: ActivityIdFormat.W3C, Id: { } id } activity)
        {
            traceParent = id;
            traceState = string.IsNullOrEmpty(activity.TraceStateString) ? null : activity.TraceStateString;
            return true;
        }

        traceParent = "";
        traceState = null;
        return false;
    }

    private static string? Text(object? value) => value switch
    {
        string s => s,
        byte[] b when b.Length <= 512 => Encoding.UTF8.GetString(b),
        ReadOnlyMemory<byte> m when m.Length <= 512 => Encoding.UTF8.GetString(m.Span),
        _ => null,
    };
}
