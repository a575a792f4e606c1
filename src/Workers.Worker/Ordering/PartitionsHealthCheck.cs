using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Workers.Worker.Ordering;

/// <summary>Ready while the lease connection and the partitions' broker connection are open; names the partitions owned.</summary>
public sealed class PartitionsHealthCheck(PartitionLeaseManager leases, WorkerIdentity identity) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var data = new Dictionary<string, object> { ["worker"] = identity.Id, ["partitions"] = leases.Owned };
        return Task.FromResult(leases.Ready
            ? HealthCheckResult.Healthy($"owns {leases.Owned.Count} partitions", data)
            : HealthCheckResult.Unhealthy("not connected to PostgreSQL and RabbitMQ for partition ownership", data: data));
    }
}
