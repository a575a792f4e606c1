using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Npgsql;
using Workers.Core.Sessions;

namespace Workers.Core.Hosting;

public static class CoreRegistration
{
    /// <summary>What both hosts need besides their own bus: options, the session store, the database health check.</summary>
    public static IHostApplicationBuilder AddWorkersCore(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.AddCheckedOptions<RabbitMqOptions>(RabbitMqOptions.SectionName);
        services.AddCheckedOptions<TopologyOptions>(TopologyOptions.SectionName);

        // Read now, not at first use, so a missing or malformed connection string stops the process at start.
        var postgres = ConnectionStrings.Read(builder.Configuration, ConnectionStrings.Postgres);
        DevelopmentSecrets.RefuseOutsideDevelopment(builder, "ConnectionStrings:Postgres", "RabbitMq:Password");
        postgres.ApplicationName ??= builder.Environment.ApplicationName;
        // Nothing here uses session state: the caller's context is transaction-local (RlsScope), which the RLS tests
        // prove on a pooled connection with no reset; skipping DISCARD ALL saves a statement per transaction. The
        // lease connection, whose advisory locks are session state, comes from its own unpooled source.
        postgres.NoResetOnClose = true;
        // The same dozen statements run every turn, and parsing and planning them (with their RLS policies) was most of
        // PostgreSQL's CPU: prepared once per connection, a turn cost it 1.5 ms instead of 4.3 (bench turn-cost). A
        // string that says Max Auto Prepare keeps its own value: 0 behind a transaction pooler that cannot keep
        // prepared statements (PgBouncer before 1.21), as the HA topology's strings say.
        if (!ConnectionStrings.Sets(builder.Configuration, ConnectionStrings.Postgres, "Max Auto Prepare"))
        {
            postgres.MaxAutoPrepare = 64;
        }

        services.AddSingleton(_ => NpgsqlDataSource.Create(postgres));
        services.AddSingleton<SessionStore>();
        // First of the hosted services, so nothing touches user data before the login is known to be bound by RLS.
        services.AddHostedService<DatabaseLoginCheck>();
        services.AddHealthChecks().AddCheck<PostgresHealthCheck>("postgres", tags: ["ready"]);

        // Start only once the bus (and every receive endpoint) is up: a notifier that says ready must already be bound
        // to the events exchange, or a client subscribing at once would miss events.
        services.AddOptions<MassTransitHostOptions>().Configure(o =>
        {
            o.WaitUntilStarted = true;
            o.StartTimeout = TimeSpan.FromSeconds(60);
            o.StopTimeout = TimeSpan.FromSeconds(30);
        });
        return builder;
    }
}
