using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Workers.Core.Hosting;
using Workers.Core.Messaging;

namespace Workers.Notifier;

public static class NotifierRegistration
{
    public static WebApplicationBuilder AddNotifier(this WebApplicationBuilder builder)
    {
        builder.AddWorkersCore(_ => { });
        builder.Services.AddHostedService<TopologyDeclaration>();
        return builder;
    }

    public static WebApplication MapNotifier(this WebApplication app)
    {
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false });
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains("ready") });
        app.Lifetime.ApplicationStarted.Register(() =>
            app.Logger.LogInformation("Notifier ready on {Addresses}", string.Join(", ", app.Urls)));
        return app;
    }
}
