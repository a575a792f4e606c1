using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Workers.Core.Telemetry;

public static class TelemetryRegistration
{
    /// <summary>Seconds-based buckets for turn and delivery histograms: 1 ms to 2 min.</summary>
    public static readonly double[] SecondsBuckets =
        [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

    /// <summary>
    /// Metrics always (scraped at <c>/metrics</c>, and pushed over OTLP when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set);
    /// traces and logs over OTLP only when it is set, so a host without a collector pays nothing for spans.
    /// </summary>
    /// <param name="builder">The host.</param>
    /// <param name="sources">The host's other activity sources (SignalR's, Semantic Kernel's).</param>
    /// <param name="meters">The host's other meters.</param>
    public static IHostApplicationBuilder AddWorkersTelemetry(this IHostApplicationBuilder builder, string[] sources, string[] meters)
    {
        ArgumentNullException.ThrowIfNull(builder);
        // Every log line written inside a span carries its trace and span ids (the console shows them with scopes on).
        builder.Logging.Configure(o => o.ActivityTrackingOptions = ActivityTrackingOptions.TraceId | ActivityTrackingOptions.SpanId);
        var telemetry = builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(builder.Environment.ApplicationName))
            .WithMetrics(m => m
                .AddMeter(WorkersTelemetry.Name)
                .AddMeter(meters)
                .AddAspNetCoreInstrumentation()
                .AddHttpClientInstrumentation()
                .AddRuntimeInstrumentation()
                .AddPrometheusExporter());
        if (string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            return builder;
        }

        telemetry.WithTracing(t => t
            .SetSampler(new EntryPointSampler())
            .AddSource(WorkersTelemetry.Name)
            .AddSource(sources)
            .AddAspNetCoreInstrumentation(o => o.Filter = c => !IsPlumbing(c.Request.Path))
            .AddHttpClientInstrumentation()
            .AddNpgsql());
        // Logs, metrics and traces, to the endpoint and protocol of the standard OTEL_EXPORTER_OTLP_* variables.
        telemetry.UseOtlpExporter();
        return builder;
    }

    /// <summary>Prometheus text format at <c>GET /metrics</c>.</summary>
    public static void MapMetrics(this WebApplication app) => app.MapPrometheusScrapingEndpoint("/metrics");

    private static bool IsPlumbing(PathString path) =>
        path.StartsWithSegments("/health", StringComparison.Ordinal) || path.StartsWithSegments("/metrics", StringComparison.Ordinal);

    /// <summary>
    /// A span that belongs to a trace is kept; a new trace starts only at an entry point (a request served, a message
    /// consumed or published). The lease heartbeat's and retention's queries would otherwise be a trace each, every second.
    /// </summary>
    private sealed class EntryPointSampler : Sampler
    {
        public override SamplingResult ShouldSample(in SamplingParameters samplingParameters)
        {
            var parent = samplingParameters.ParentContext;
            if (parent.TraceId != default)
            {
                return new SamplingResult((parent.TraceFlags & ActivityTraceFlags.Recorded) != 0);
            }

            return new SamplingResult(samplingParameters.Kind is ActivityKind.Server or ActivityKind.Consumer or ActivityKind.Producer);
        }
    }
}
