using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Workers.Core.Hosting;

/// <summary>
/// <c>/health/ready</c> as JSON: the overall status and each check's name, status and description, and the data of
/// checks tagged <see cref="ShowData"/> (a worker's partitions). An exception's message and other checks' data (MassTransit
/// lists broker addresses) are left out: the notifier's port is public, and they can name hosts and logins.
/// </summary>
public static class HealthJson
{
    public const string ShowData = "show-data";

    public static HealthCheckOptions Ready => new()
    {
        Predicate = c => c.Tags.Contains("ready"),
        ResponseWriter = WriteAsync,
    };

    public static Task WriteAsync(HttpContext context, HealthReport report)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(report);
        context.Response.ContentType = "application/json; charset=utf-8";
        return JsonSerializer.SerializeAsync(context.Response.Body, new
        {
            Status = report.Status.ToString(),
            DurationMs = Math.Round(report.TotalDuration.TotalMilliseconds, 1),
            Checks = report.Entries.Select(e => new
            {
                Name = e.Key,
                Status = e.Value.Status.ToString(),
                e.Value.Description,
                DurationMs = Math.Round(e.Value.Duration.TotalMilliseconds, 1),
                Data = e.Value.Tags.Contains(ShowData) && e.Value.Data.Count > 0 ? e.Value.Data : null,
            }),
        }, JsonSerializerOptions.Web, context.RequestAborted);
    }
}
