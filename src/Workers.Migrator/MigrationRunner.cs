using DbUp;
using DbUp.Engine.Output;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Workers.Migrator;

/// <summary>
/// Applies the numbered SQL files of <c>migrations/</c> in order, records each in <c>public.workers_migrations</c>,
/// and skips what is recorded, so a second run is a no-op. Each file runs in its own transaction; the first failure
/// stops the run with the file's name and the database's error.
/// </summary>
public static class MigrationRunner
{
    public static string DefaultDirectory => Path.Combine(AppContext.BaseDirectory, "migrations");

    /// <returns>The names of the files applied by this run.</returns>
    public static IReadOnlyList<string> Apply(
        NpgsqlConnectionStringBuilder admin, NpgsqlConnectionStringBuilder? app, string directory, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(admin);
        if (!Directory.Exists(directory))
        {
            throw new MigrationFailedException($"migrations directory not found: {directory}");
        }

        var log = new UpgradeLog(logger);
        EnsureDatabase.For.PostgresqlDatabase(admin.ConnectionString, log);
        var result = DeployChanges.To.PostgresqlDatabase(admin.ConnectionString)
            .WithScriptsFromFileSystem(directory)
            .WithTransactionPerScript()
            // The SQL uses $$ quoting, which DbUp's $variable$ substitution would mangle.
            .WithVariablesDisabled()
            .JournalToPostgresqlTable("public", "workers_migrations")
            .LogTo(log)
            .Build()
            .PerformUpgrade();
        if (!result.Successful)
        {
            var message = result.Error is PostgresException pg ? $"{pg.SqlState}: {pg.MessageText}" : result.Error?.Message;
            throw new MigrationFailedException($"migration {result.ErrorScript?.Name ?? "?"} failed: {message}");
        }

        if (app is { Password.Length: > 0 })
        {
            SetAppPassword(admin, app);
        }

        return result.Scripts.Select(s => s.Name).ToList();
    }

    private static void SetAppPassword(NpgsqlConnectionStringBuilder admin, NpgsqlConnectionStringBuilder app)
    {
        using var connection = new NpgsqlConnection(admin.ConnectionString);
        connection.Open();
        // ALTER ROLE takes no bind parameters; a doubled quote is the complete escape with standard_conforming_strings.
        var literal = app.Password!.Replace("'", "''", StringComparison.Ordinal);
        using var command = new NpgsqlCommand($"ALTER ROLE workers_app PASSWORD '{literal}'", connection);
        command.ExecuteNonQuery();
    }

    private sealed class UpgradeLog(ILogger logger) : IUpgradeLog
    {
        public void LogTrace(string format, params object[] args) => logger.LogTrace("{Message}", Format(format, args));

        public void LogDebug(string format, params object[] args) => logger.LogDebug("{Message}", Format(format, args));

        public void LogInformation(string format, params object[] args) => logger.LogInformation("{Message}", Format(format, args));

        public void LogWarning(string format, params object[] args) => logger.LogWarning("{Message}", Format(format, args));

        public void LogError(string format, params object[] args) => logger.LogError("{Message}", Format(format, args));

        public void LogError(Exception ex, string format, params object[] args) => logger.LogError("{Message}", Format(format, args));

        private static string Format(string format, object[] args) =>
            args.Length == 0 ? format : string.Format(System.Globalization.CultureInfo.InvariantCulture, format, args);
    }
}
