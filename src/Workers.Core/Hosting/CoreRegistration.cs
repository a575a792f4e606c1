using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Workers.Core.Messaging;
using Workers.Core.Sessions;

namespace Workers.Core.Hosting;

public static class CoreRegistration
{
    /// <summary>Options, the session store and the bus: what both hosts need.</summary>
    public static IHostApplicationBuilder AddWorkersCore(
        this IHostApplicationBuilder builder, Action<IBusRegistrationConfigurator> addConsumers,
        Action<IBusRegistrationContext, IRabbitMqBusFactoryConfigurator>? configureEndpoints = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.AddCheckedOptions<RabbitMqOptions>(RabbitMqOptions.SectionName);
        services.AddCheckedOptions<TopologyOptions>(TopologyOptions.SectionName);
        services.AddCheckedOptions<RetentionOptions>(RetentionOptions.SectionName);

        // Read now, not at first use, so a missing or malformed connection string stops the process at start.
        var postgres = ConnectionStrings.Read(builder.Configuration, ConnectionStrings.Postgres);
        postgres.ApplicationName ??= builder.Environment.ApplicationName;
        // Nothing here uses session state: the caller's context is transaction-local (RlsScope), which the RLS tests
        // prove on a pooled connection with no reset; skipping DISCARD ALL saves a statement per transaction. The
        // lease connection, whose advisory locks are session state, comes from its own unpooled source.
        postgres.NoResetOnClose = true;
        services.AddSingleton(_ => NpgsqlDataSource.Create(postgres));
        services.AddSingleton<SessionStore>();
        services.AddSingleton<SessionLifecycle>();

        services.AddHealthChecks().AddCheck<PostgresHealthCheck>("postgres", tags: ["ready"]);
        services.AddWorkersBus(addConsumers, configureEndpoints);
        return builder;
    }
}
