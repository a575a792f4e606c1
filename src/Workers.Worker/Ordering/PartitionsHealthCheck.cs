using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Workers.Worker.Ordering;

/// <summary>Ready while the lease connection to PostgreSQL and the consuming connection to RabbitMQ are open.</summary>
public sealed class PartitionsHealthCheck(PartitionLeaseManager leases) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(leases.Ready
            ? HealthCheckResult.Healthy($"owns partitions {string.Join(",", leases.Owned)}")
            : HealthCheckResult.Unhealthy("not connected to PostgreSQL and RabbitMQ for partition ownership"));
}
