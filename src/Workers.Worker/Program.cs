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
    await app.CheckBrokerTopologyAsync();
    await app.RunAsync();
});
