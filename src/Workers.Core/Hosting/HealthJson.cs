using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Workers.Core.Hosting;

/// <summary>
/// <c>/health/ready</c> as JSON: the overall status and each check's name, status, description and data (a worker's
/// partitions). An exception's message is left out: it can name hosts and logins.
/// </summary>
public static class HealthJson
{
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
                Data = e.Value.Data.Count > 0 ? e.Value.Data : null,
            }),
        }, JsonSerializerOptions.Web, context.RequestAborted);
    }
}
