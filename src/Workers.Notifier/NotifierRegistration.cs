using System.Text.Json.Serialization;
using MassTransit;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Protocol;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Workers.Contracts;
using Workers.Core.Hosting;
using Workers.Core.Messaging;
using Workers.Core.Telemetry;
using Workers.Core.Usage;
using Workers.Notifier.Auth;
using Workers.Notifier.Chat;
using Workers.Notifier.Operations;
using Workers.Notifier.Sending;
using Workers.Notifier.Sessions;

namespace Workers.Notifier;

public static class NotifierRegistration
{
    public static WebApplicationBuilder AddNotifier(this WebApplicationBuilder builder)
    {
        builder.AddWorkersCore();
        // SignalR's span per hub method call, and its connection metrics (signalr.server.active_connections, ...).
        builder.AddWorkersTelemetry(sources: ["Microsoft.AspNetCore.SignalR.Server"],
            meters: ["Microsoft.AspNetCore.Http.Connections", "Microsoft.AspNetCore.SignalR.Server"]);
        var services = builder.Services;
        services.AddMassTransit(x =>
        {
            foreach (var replyEvent in ReplyEvents.Types)
            {
                x.AddConsumer(typeof(ChatEventConsumer<>).MakeGenericType(replyEvent));
            }

            x.AddConsumer<ReplyDeltaBatchConsumer>();
            x.AddConsumer<TurnProgressConsumer>();
            x.UsingRabbitMq((context, cfg) =>
            {
                cfg.UseWorkersBroker(context);
                // Each instance has its own queue and delivers to its own connections. Named with a fixed prefix (not
                // MassTransit's host_process_... temporary name) so the notifier's login can be granted exactly its own
                // queues. Bound here to the turn lifecycle only; SessionRoutes binds the sessions its connections watch.
                var routes = context.GetRequiredService<SessionRoutes>();
                cfg.ReceiveEndpoint(routes.Queue, e =>
                {
                    OwnQueue(e, Partitioning.TurnLifecycleKey);
                    e.ConnectReceiveEndpointObserver(routes);
                    e.PrefetchCount = 512;
                    // One at a time keeps each session's events in the order the worker published them.
                    e.ConcurrentMessageLimit = 1;
                    foreach (var replyEvent in ReplyEvents.Types)
                    {
                        e.ConfigureConsumer(context, typeof(ChatEventConsumer<>).MakeGenericType(replyEvent));
                    }

                    e.ConfigureConsumer<ReplyDeltaBatchConsumer>(context);
                });
                // Answers to a resuming client's progress query, on their own queue: behind a backlog of reply events
                // (200 browsers streaming) they came later than the query waits, and the client's replay missed the
                // running turn's text so far (a gap).
                cfg.ReceiveEndpoint(routes.ProgressQueue, e =>
                {
                    OwnQueue(e, Partitioning.TurnProgressKey);
                    e.ConfigureConsumer<TurnProgressConsumer>(context);
                });
            });
        });
        builder.AddNotifierAuth();
        builder.AddOperatorView();
        services.AddCheckedOptions<LimitOptions>(LimitOptions.SectionName);
        services.AddCheckedOptions<PageOptions>(PageOptions.SectionName);
        services.AddCheckedOptions<UsageOptions>(UsageOptions.SectionName);
        services.AddCors();
        services.AddSingleton<NotifierMetrics>();
        services.AddSingleton<SessionLifecycle>();
        services.AddSingleton<SessionRoutes>();
        services.AddSingleton<SessionSubscriptions>();
        services.AddSingleton<TurnProgressQuery>();
        services.AddSingleton<SessionReplay>();
        services.AddSingleton<TurnsInFlight>();
        services.AddSingleton<MessageSender>();
        services.AddSignalR(o => o.AddFilter<HubErrors>())
            .AddJsonProtocol(o => o.PayloadSerializerOptions.DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull);
        services.Replace(ServiceDescriptor.Singleton<IHubProtocol>(provider =>
            new MalformedCalls(new JsonHubProtocol(provider.GetRequiredService<IOptions<JsonHubProtocolOptions>>()))));
        services.AddOptions<HubOptions>().Configure<IOptions<LimitOptions>>((hub, limits) =>
            hub.MaximumReceiveMessageSize = limits.Value.MaxHubMessageBytes);
        services.AddProblemDetails();
        // A malformed body or parameter as an exception, which SessionEndpoints answers with a problem (not an empty 400).
        services.PostConfigure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        return builder;
    }

    public static WebApplication MapNotifier(this WebApplication app)
    {
        app.UseHubOriginCheck();
        // A page served by another notifier (Page:NotifierUrls) calls this one's REST API and hub negotiation: the
        // origins allowed for the hub are the ones CORS allows, with bearer tokens, never cookies.
        var origins = app.Services.GetRequiredService<IOptions<LimitOptions>>().Value.AllowedOrigins;
        app.UseCors(cors => cors.WithOrigins(origins).AllowAnyHeader().AllowAnyMethod());
        app.UseDefaultFiles();
        app.UseStaticFiles();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseProblemsForMalformedRequests();
        app.MapHub<ChatHub>(AuthRegistration.HubPath, o => o.CloseOnAuthenticationExpiration = true);
        app.MapSessionEndpoints();
        app.MapDevTokens();
        app.MapGet("/page-config.json", (IOptions<PageOptions> page) => new
        {
            notifiers = page.Value.NotifierUrls, models = page.Value.Models, tools = page.Value.Tools,
        });
        app.MapOperatorEndpoints();
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false });
        app.MapHealthChecks("/health/ready", HealthJson.Ready);
        app.MapMetrics();
        // Built now, so its gauges are on /metrics (at 0) before the first connection needs it.
        app.Services.GetRequiredService<NotifierMetrics>();
        app.Lifetime.ApplicationStarted.Register(() =>
            app.Logger.LogInformation("Notifier ready on {Addresses} ({Environment})", string.Join(", ", app.Urls),
                app.Environment.EnvironmentName));
        return app;
    }

    /// <summary>
    /// One of this instance's own queues, bound to <paramref name="routingKey"/> of the by-session exchange. Neither
    /// auto-delete nor transient, which MassTransit declares exclusive to its own connection: SessionRoutes binds the
    /// events queue from a second connection. The broker deletes it a minute after its notifier stopped consuming
    /// (x-expires); deltas stay transient messages, so only turn starts and ends touch disk.
    /// </summary>
    private static void OwnQueue(IRabbitMqReceiveEndpointConfigurator e, string routingKey)
    {
        e.AutoDelete = false;
        e.Durable = true;
        e.Exclusive = false;
        e.SetQueueArgument("x-expires", (int)TimeSpan.FromMinutes(1).TotalMilliseconds);
        e.ConfigureConsumeTopology = false;
        e.Bind(Partitioning.SessionEventsExchange, b =>
        {
            b.ExchangeType = "direct";
            b.RoutingKey = routingKey;
        });
    }
}
