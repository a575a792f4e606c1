using MassTransit;
using Microsoft.SemanticKernel;
using Microsoft.SemanticKernel.ChatCompletion;
using Workers.Contracts;
using Workers.Core.Hosting;
using Workers.Core.Messaging;
using Workers.Core.Telemetry;
using Workers.Core.Usage;
using Workers.Worker.Retention;
using Workers.Worker.Memory;
using Workers.Worker.Model;
using Workers.Worker.Ordering;
using Workers.Worker.Turns;
using Workers.Worker.Tools;
using Workers.Worker.Usage;

namespace Workers.Worker;

public static class WorkerRegistration
{
    public static WebApplicationBuilder AddWorker(this WebApplicationBuilder builder)
    {
        builder.AddWorkersCore();
        // Semantic Kernel's own spans of the model call, when it is told to emit them (an AppContext switch).
        builder.AddWorkersTelemetry(sources: ["Microsoft.SemanticKernel*"], meters: ["Microsoft.SemanticKernel*"]);
        // The MCP client logs requests and what servers print at Information and below: user content, not for these logs.
        builder.Logging.AddFilter("ModelContextProtocol", LogLevel.Warning);
        var services = builder.Services;
        services.AddMassTransit(x =>
        {
            x.AddConsumer<CancelTurnConsumer>();
            x.AddConsumer<TurnProgressConsumer>();
            x.UsingRabbitMq((context, cfg) =>
            {
                cfg.UseWorkersBroker(context);
                // Each worker hears every cancel on its own auto-deleted queue: out of band, never behind requests.
                // A fixed prefix (not MassTransit's host_process_... temporary name) so the worker's login can be granted
                // exactly its own queues; auto-deleted with the connection like a temporary endpoint.
                cfg.ReceiveEndpoint($"{BrokerPermissions.WorkerControlPrefix}{NewId.NextGuid():N}", e =>
                {
                    e.AutoDelete = true;
                    e.Durable = false;
                    e.ConfigureConsumeTopology = false;
                    e.Bind(Partitioning.ControlExchange, b => b.ExchangeType = "fanout");
                    e.ConfigureConsumers(context);
                });
            });
        });
        services.AddCheckedOptions<WorkerOptions>(WorkerOptions.SectionName);
        services.AddCheckedOptions<ModelOptions>(ModelOptions.SectionName);
        var development = builder.Environment.IsDevelopment();
        services.PostConfigure<ModelOptions>(o => o.Offline.Directives ??= development);
        services.AddSingleton<WorkerIdentity>();
        services.AddSingleton<WorkerMetrics>();
        services.AddSingleton<SessionLanes>();
        services.AddSingleton<ActiveTurns>();
        services.AddSingleton<TurnEvents>();
        services.AddSingleton<DeltaBatches>();
        services.AddSingleton<TurnStore>();
        services.AddCheckedOptions<UsageOptions>(UsageOptions.SectionName);
        services.AddSingleton<TurnBudget>();
        services.AddCheckedOptions<ToolOptions>(ToolOptions.Section);
        services.AddSingleton<McpToolServers>();
        services.AddHostedService(sp => sp.GetRequiredService<McpToolServers>());
        services.AddSingleton<ModelCall>();
        services.AddSingleton<TurnProcessor>();
        services.AddSingleton<PartitionDispatcher>();
        // Leases are session-level advisory locks: never through a transaction pooler, and losing this connection (its
        // primary failing over, say) counts as losing every lease.
        var leases = ConnectionStrings.Read(builder.Configuration,
            string.IsNullOrWhiteSpace(builder.Configuration.GetConnectionString(ConnectionStrings.PostgresLeases))
                ? ConnectionStrings.Postgres
                : ConnectionStrings.PostgresLeases);
        leases.Pooling = false;
        leases.ApplicationName = "Workers.Worker leases";
        services.AddKeyedSingleton(PartitionLeaseManager.LeaseConnections, (_, _) => Npgsql.NpgsqlDataSource.Create(leases));
        services.AddSingleton<PartitionLeaseManager>();
        services.AddHostedService(sp => sp.GetRequiredService<PartitionLeaseManager>());
        services.AddCheckedOptions<RetentionOptions>(RetentionOptions.SectionName);
        services.AddHostedService<SessionRetentionService>();
        services.AddChatModel(builder.Configuration);
        services.AddHealthChecks().AddCheck<PartitionsHealthCheck>("partitions", tags: ["ready", HealthJson.ShowData]);
        return builder;
    }

    private static void AddChatModel(this IServiceCollection services, ConfigurationManager configuration)
    {
        var options = configuration.GetSection(ModelOptions.SectionName).Get<ModelOptions>() ?? new ModelOptions();
        services.AddSingleton<ChatModels>();
        if (options.Provider != "OpenAI")
        {
            services.AddSingleton<IChatCompletionService, OfflineChatModel>();
            return;
        }

        var openAi = options.OpenAI;
        if (string.IsNullOrWhiteSpace(openAi.Model))
        {
            throw new InvalidConfigurationException("Llm:OpenAI:Model is missing (Llm:Provider is OpenAI)");
        }

        var client = ChatModels.Client(openAi, "Llm:OpenAI");
        services.AddOpenAIChatCompletion(openAi.Model, client);
    }
}
