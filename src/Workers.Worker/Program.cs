using Workers.Core.Hosting;
using Workers.Core.Messaging;
using Workers.Core.Telemetry;
using Workers.Worker;

if (await HealthProbe.RunIfAskedAsync(args) is { } probe)
{
    return probe;
}

return await StartupGuard.RunAsync(async () =>
{
    // Content root next to the binaries, so appsettings.json is found whatever the working directory.
    var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
    builder.AddWorker();
    var app = builder.Build();
    app.MapWorkerHealth();
    app.MapMetrics();
    // Until "ready" a worker waits on RabbitMQ twice (this check, then the bus's start, up to 60 s): these lines say
    // which of the two a worker that never gets ready is stuck in.
    var id = app.Services.GetRequiredService<Workers.Worker.Ordering.WorkerIdentity>().Id;
    app.Logger.LogInformation("Worker {WorkerId} starting: checking the broker topology", id);
    await app.CheckBrokerTopologyAsync();
    app.Logger.LogInformation("Worker {WorkerId} found the broker topology; starting the bus and the partition leases", id);
    await app.RunAsync();
});
