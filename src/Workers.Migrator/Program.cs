using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Npgsql;
using Workers.Core.Hosting;
using Workers.Core.Messaging;
using Workers.Core.Operations;
using Workers.Migrator;

// Usage: Workers.Migrator [directory]; reads ConnectionStrings:PostgresAdmin (runs the files), the login roles'
// connection strings ConnectionStrings:PostgresWorker, :PostgresNotifier, :PostgresOperator (and :Postgres) to set their passwords, and
// Sessions:IdleTtl (retention's TTL, which only the migrator may write).
// Usage: Workers.Migrator topology; declares the broker topology (exchanges, partition queues, error queue) with the
// RabbitMq:* login, which must be allowed to configure them (the admin login: the hosts' own logins may not), and
// Workers:Partitions / Workers:QueueType. Idempotent like the migrations.
// Usage: Workers.Migrator logins; creates the components' broker logins with least privilege (BrokerLoginSetup), as
// the RabbitMq:* admin login through the management API (RabbitMq:ManagementPort).
// Usage: Workers.Migrator pool | parked [replay|discard SESSION REQUEST]; the operator's view (OperatorView), with
// ConnectionStrings:PostgresAdmin and the RabbitMq:* admin login.
var configuration = new ConfigurationBuilder()
    .AddJsonFile("appsettings.json", optional: true)
    .AddEnvironmentVariables()
    .AddCommandLine(args)
    .Build();
using var loggerFactory = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true));
var logger = loggerFactory.CreateLogger("Workers.Migrator");
try
{
    if (args.FirstOrDefault() == "topology")
    {
        var rabbit = Checked<RabbitMqOptions>(configuration, RabbitMqOptions.SectionName);
        var topology = Checked<TopologyOptions>(configuration, TopologyOptions.SectionName);
        await BrokerConnections.DeclareTopologyAsync(rabbit, topology, "Workers.Migrator topology", CancellationToken.None);
        logger.LogInformation("Declared the broker topology on virtual host {VirtualHost}: {Partitions} {QueueType} partition queues",
            rabbit.VirtualHost, topology.Partitions, topology.QueueType);
        return 0;
    }

    if (args.FirstOrDefault() == "logins")
    {
        var rabbit = Checked<RabbitMqOptions>(configuration, RabbitMqOptions.SectionName);
        var created = await BrokerLoginSetup.ApplyAsync(configuration, rabbit, CancellationToken.None);
        logger.LogInformation("Broker logins {Logins} set on virtual host {VirtualHost} with their components' permissions",
            string.Join(", ", created), rabbit.VirtualHost);
        return 0;
    }

    if (args.FirstOrDefault() is "pool" or "parked")
    {
        var rabbit = Checked<RabbitMqOptions>(configuration, RabbitMqOptions.SectionName);
        await using var db = NpgsqlDataSource.Create(ConnectionStrings.Read(configuration, ConnectionStrings.PostgresAdmin));
        using var view = new OperatorView(db, rabbit, new System.Net.NetworkCredential(rabbit.Username, rabbit.Password));
        var partitions = Checked<TopologyOptions>(configuration, TopologyOptions.SectionName).Partitions;
        switch (args)
        {
            case ["pool", ..]:
                Console.WriteLine(OperatorView.Format(await view.PoolAsync(partitions, CancellationToken.None)));
                return 0;
            case ["parked"]:
                Console.WriteLine(OperatorView.Format(await view.ParkedAsync(CancellationToken.None)));
                return 0;
            case ["parked", "replay" or "discard", var session, var request] when Guid.TryParse(session, out var sessionId)
                                                                               && Guid.TryParse(request, out var requestId):
                var done = args[1] == "replay"
                    ? await view.ReplayAsync(sessionId, requestId, partitions, CancellationToken.None)
                    : await view.DiscardAsync(sessionId, requestId, CancellationToken.None);
                Console.WriteLine(done ? $"{args[1]}: request {requestId} of session {sessionId}" : $"no parked request {requestId} in session {sessionId}");
                return done ? 0 : 1;
            default:
                Console.Error.WriteLine("usage: Workers.Migrator pool | parked [replay|discard SESSION_ID REQUEST_ID]");
                return 2;
        }
    }

    var admin = ConnectionStrings.Read(configuration, ConnectionStrings.PostgresAdmin);
    // The login roles' passwords come from the connection strings the hosts will use, whichever are given.
    var logins = new[] { ConnectionStrings.Postgres, ConnectionStrings.PostgresWorker, ConnectionStrings.PostgresNotifier, ConnectionStrings.PostgresOperator }
        .Where(name => configuration.GetConnectionString(name) is { Length: > 0 })
        .Select(name => ConnectionStrings.Read(configuration, name))
        .ToList();
    var idleTtl = configuration["Sessions:IdleTtl"] is { Length: > 0 } ttl
        ? TimeSpan.TryParse(ttl, System.Globalization.CultureInfo.InvariantCulture, out var parsed) && parsed >= TimeSpan.FromMinutes(1)
            ? parsed
            : throw new InvalidConfigurationException("Sessions:IdleTtl must be a time span of at least 00:01:00 (e.g. 30.00:00:00)")
        : (TimeSpan?)null;
    var directory = args.FirstOrDefault(a => !a.Contains('=', StringComparison.Ordinal)) ?? MigrationRunner.DefaultDirectory;
    var applied = MigrationRunner.Apply(admin, logins, directory, logger, idleTtl);
    logger.LogInformation("Applied {Count} migrations to database {Database}: {Names}", applied.Count, admin.Database,
        applied.Count == 0 ? "nothing new" : string.Join(", ", applied));
    return 0;
}
catch (InvalidConfigurationException e)
{
    Console.Error.WriteLine($"configuration error: {e.Message}");
    return 2;
}
catch (RabbitMQ.Client.Exceptions.BrokerUnreachableException e)
{
    // One line: the broker is down, or the login is refused (its message names neither password nor secret).
    Console.Error.WriteLine($"broker unreachable: {e.InnerException?.Message ?? e.Message}");
    return 1;
}
catch (HttpRequestException e)
{
    Console.Error.WriteLine($"RabbitMQ management API unreachable: {e.Message}");
    return 1;
}
catch (MigrationFailedException e)
{
    Console.Error.WriteLine(e.Message);
    return 1;
}

static T Checked<T>(IConfiguration configuration, string section) where T : class, new()
{
    var options = configuration.GetSection(section).Get<T>() ?? new T();
    var failures = new List<System.ComponentModel.DataAnnotations.ValidationResult>();
    if (!System.ComponentModel.DataAnnotations.Validator.TryValidateObject(options, new(options), failures, validateAllProperties: true))
    {
        throw new InvalidConfigurationException($"{section}: {string.Join("; ", failures.Select(f => f.ErrorMessage))}");
    }

    return options;
}
