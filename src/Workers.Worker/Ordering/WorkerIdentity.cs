using Microsoft.Extensions.Options;

namespace Workers.Worker.Ordering;

/// <summary>This process's member id in the pool, fixed for its lifetime.</summary>
public sealed class WorkerIdentity(IOptions<WorkerOptions> options)
{
    public string Id { get; } = options.Value.NewWorkerId();
}
