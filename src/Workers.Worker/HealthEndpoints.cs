using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Workers.Core.Hosting;
using Workers.Worker.Ordering;

namespace Workers.Worker;

public static class HealthEndpoints
{
    public static void MapWorkerHealth(this WebApplication app)
    {
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false });
        app.MapHealthChecks("/health/ready", HealthJson.Ready);
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses;
            app.Logger.LogInformation("Worker {WorkerId} ready; health at {Addresses}",
                app.Services.GetRequiredService<WorkerIdentity>().Id, string.Join(", ", addresses ?? []));
        });
    }
}
