using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Workers.Core.Hosting;
using Workers.Migrator;

// Usage: Workers.Migrator [directory]; reads ConnectionStrings:PostgresAdmin (runs the files) and
// ConnectionStrings:Postgres (the app role's password is set from it).
var configuration = new ConfigurationBuilder()
    .AddJsonFile("appsettings.json", optional: true)
    .AddEnvironmentVariables()
    .AddCommandLine(args)
    .Build();
using var loggerFactory = LoggerFactory.Create(b => b.AddSimpleConsole(o => o.SingleLine = true));
var logger = loggerFactory.CreateLogger("Workers.Migrator");
try
{
    var admin = ConnectionStrings.Read(configuration, ConnectionStrings.PostgresAdmin);
    var app = configuration.GetConnectionString(ConnectionStrings.Postgres) is { Length: > 0 }
        ? ConnectionStrings.Read(configuration, ConnectionStrings.Postgres)
        : null;
    var directory = args.FirstOrDefault(a => !a.Contains('=', StringComparison.Ordinal)) ?? MigrationRunner.DefaultDirectory;
    var applied = MigrationRunner.Apply(admin, app, directory, logger);
    logger.LogInformation("Applied {Count} migrations to database {Database}: {Names}", applied.Count, admin.Database,
        applied.Count == 0 ? "nothing new" : string.Join(", ", applied));
    return 0;
}
catch (InvalidConfigurationException e)
{
    Console.Error.WriteLine($"configuration error: {e.Message}");
    return 2;
}
catch (MigrationFailedException e)
{
    Console.Error.WriteLine(e.Message);
    return 1;
}
