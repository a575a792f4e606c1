using System.Net;
using Microsoft.Extensions.Options;
using Npgsql;
using Workers.Core.Hosting;
using Workers.Core.Operations;
using Workers.Core.Sessions;
using Workers.Notifier.Auth;
using Workers.Notifier.Sessions;

namespace Workers.Notifier.Operations;

/// <summary>
/// The operator's admin API, for a token with the admin role (<see cref="AuthRegistration.OperatorPolicy"/>): the pool
/// (members with their lanes and waiting requests, each partition's owner, epoch and backlog) and the parked requests
/// (listed without their text; replayed to their session once, or discarded). The page is <c>/admin.html</c>. Every
/// action is logged with the operator's user id.
/// </summary>
public static class OperatorEndpoints
{
    /// <summary>The problem code of an API call on a notifier without the operator's logins.</summary>
    public const string OffCode = "operator_view_off";

    public const string ParkedNotFoundCode = "parked_not_found";

    public const string ManagementUnreachableCode = "broker_management_unreachable";

    public static void AddOperatorView(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (builder.Configuration.GetConnectionString(ConnectionStrings.PostgresOperator) is not { Length: > 0 })
        {
            return;
        }

        var login = ConnectionStrings.Read(builder.Configuration, ConnectionStrings.PostgresOperator);
        var options = builder.Configuration.GetSection(OperatorOptions.SectionName).Get<OperatorOptions>() ?? new OperatorOptions();
        if (options.ManagementPassword.Length == 0 || options.ManagementUsername.Length == 0)
        {
            throw new InvalidConfigurationException(
                $"Operator:ManagementUsername and :ManagementPassword are required with ConnectionStrings:{ConnectionStrings.PostgresOperator} " +
                "(a broker login with the management tag; Workers.Migrator logins creates workers-monitor)");
        }

        // Its own small pool: the admin API never takes a connection the chat's requests wait for.
        login.MaxPoolSize = 4;
        builder.Services.AddSingleton(_ => new OperatorDataSource(NpgsqlDataSource.Create(login)));
        // Like the host's own login: one that row-level security does not bind stops the notifier. (Not
        // AddHostedService: it adds one service per type, and the host's own check is already one.)
        builder.Services.AddSingleton<IHostedService>(services => new DatabaseLoginCheck(services.GetRequiredService<OperatorDataSource>().Source,
            services.GetRequiredService<IHostApplicationLifetime>(), services.GetRequiredService<ILogger<DatabaseLoginCheck>>(),
            $"ConnectionStrings:{ConnectionStrings.PostgresOperator}", "workers_operator"));
        builder.Services.AddSingleton(services => new OperatorView(services.GetRequiredService<OperatorDataSource>().Source,
            services.GetRequiredService<IOptions<RabbitMqOptions>>().Value,
            new NetworkCredential(options.ManagementUsername, options.ManagementPassword)));
    }

    public static void MapOperatorEndpoints(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var api = app.MapGroup("/admin/api").RequireAuthorization(AuthRegistration.OperatorPolicy).AddEndpointFilter(async (context, next) =>
        {
            if (context.HttpContext.RequestServices.GetService<OperatorView>() is null)
            {
                return TypedResults.Problem(
                    $"this notifier's admin API is off: it has no ConnectionStrings:{ConnectionStrings.PostgresOperator}",
                    statusCode: StatusCodes.Status503ServiceUnavailable, title: OffCode,
                    extensions: new Dictionary<string, object?> { ["code"] = OffCode });
            }

            try
            {
                return await next(context);
            }
            catch (ChatErrorException e)
            {
                return SessionEndpoints.Problem(e.Code, e.Message);
            }
            catch (HttpRequestException e)
            {
                // The queue depths come from RabbitMQ's management API: down, or the monitor login refused (401).
                return TypedResults.Problem(
                    $"RabbitMQ's management API did not answer ({(e.StatusCode is { } status ? $"{(int)status} {status}" : e.HttpRequestError.ToString())}); " +
                    "check Operator:ManagementUsername/Password and RabbitMq:ManagementPort",
                    statusCode: StatusCodes.Status502BadGateway, title: ManagementUnreachableCode,
                    extensions: new Dictionary<string, object?> { ["code"] = ManagementUnreachableCode });
            }
        });
        var partitions = app.Services.GetRequiredService<IOptions<TopologyOptions>>().Value.Partitions;

        api.MapGet("/pool", (HttpContext http, CancellationToken cancellationToken) => View(http).PoolAsync(partitions, cancellationToken));
        api.MapGet("/parked", (HttpContext http, CancellationToken cancellationToken) => View(http).ParkedAsync(cancellationToken));
        api.MapPost("/parked/{sessionId}/{requestId}/replay", async (string sessionId, string requestId, HttpContext http,
            ILogger<OperatorView> logger) =>
        {
            var (session, request) = (SessionIds.Parse(sessionId), SessionIds.Parse(requestId, "requestId"));
            if (!await View(http).ReplayAsync(session, request, partitions, http.RequestAborted))
            {
                return NotParked(session, request);
            }

            logger.LogInformation("Operator {OperatorId} replayed parked request {RequestId} of session {SessionId}",
                http.User.UserId(), request, session);
            return Results.Ok(new { replayed = request });
        });
        api.MapDelete("/parked/{sessionId}/{requestId}", async (string sessionId, string requestId, HttpContext http,
            ILogger<OperatorView> logger) =>
        {
            var (session, request) = (SessionIds.Parse(sessionId), SessionIds.Parse(requestId, "requestId"));
            if (!await View(http).DiscardAsync(session, request, http.RequestAborted))
            {
                return NotParked(session, request);
            }

            logger.LogInformation("Operator {OperatorId} discarded parked request {RequestId} of session {SessionId}",
                http.User.UserId(), request, session);
            return Results.NoContent();
        });
    }

    /// <summary>Registered only with the operator's logins; the group's filter answered already when it is not.</summary>
    private static OperatorView View(HttpContext http) => http.RequestServices.GetRequiredService<OperatorView>();

    private static Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult NotParked(Guid session, Guid request) => TypedResults.Problem(
        $"no parked request {request} in session {session}", statusCode: StatusCodes.Status404NotFound, title: ParkedNotFoundCode,
        extensions: new Dictionary<string, object?> { ["code"] = ParkedNotFoundCode });

    /// <summary>The operator login's connections, apart from the host's own data source.</summary>
    private sealed class OperatorDataSource(NpgsqlDataSource source) : IAsyncDisposable
    {
        public NpgsqlDataSource Source => source;

        public ValueTask DisposeAsync() => source.DisposeAsync();
    }
}
