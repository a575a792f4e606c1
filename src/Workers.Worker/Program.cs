using Workers.Core.Hosting;
using Workers.Worker;

return await StartupGuard.RunAsync(async () =>
{
    var builder = WebApplication.CreateSlimBuilder(args);
    builder.AddWorker();
    var app = builder.Build();
    app.MapWorkerHealth();
    await app.RunAsync();
});
