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

    /// <summary>The roles hosts log in as. Each run gives them the passwords of the connection strings it was handed
    /// and re-asserts that none can bypass row-level security or act as the schema's owner.</summary>
    public static readonly IReadOnlyList<string> LoginRoles = ["workers_app", "workers_worker", "workers_notifier", "workers_operator"];

    /// <param name="admin">A superuser or a role with CREATEROLE that may SET ROLE workers_migrator.</param>
    /// <param name="logins">Connection strings of the login roles whose passwords to set (others are ignored).</param>
    /// <param name="directory">The numbered SQL files.</param>
    /// <param name="logger">Progress.</param>
    /// <param name="sessionIdleTtl">Retention's TTL, written where only the migrator can (workers.settings).</param>
    /// <returns>The names of the files applied by this run.</returns>
    public static IReadOnlyList<string> Apply(NpgsqlConnectionStringBuilder admin, IEnumerable<NpgsqlConnectionStringBuilder> logins,
        string directory, ILogger logger, TimeSpan? sessionIdleTtl = null)
    {
        ArgumentNullException.ThrowIfNull(logins);
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

        using var connection = new NpgsqlConnection(admin.ConnectionString);
        connection.Open();
        foreach (var role in LoginRoles)
        {
            Execute(connection, $"ALTER ROLE {role} NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT");
            Execute(connection, $"REVOKE workers_migrator FROM {role}");
        }

        foreach (var login in logins.Where(l => l is { Password.Length: > 0 } && LoginRoles.Contains(l.Username)))
        {
            // ALTER ROLE takes no bind parameters; a doubled quote is the complete escape with standard_conforming_strings.
            var literal = login.Password!.Replace("'", "''", StringComparison.Ordinal);
            Execute(connection, $"ALTER ROLE {login.Username} PASSWORD '{literal}'");
        }

        if (sessionIdleTtl is { } ttl)
        {
            using var setTtl = new NpgsqlCommand("UPDATE workers.settings SET value = $1 WHERE key = 'session_idle_ttl'", connection);
            setTtl.Parameters.Add(new NpgsqlParameter { Value = $"{(long)ttl.TotalSeconds} seconds" });
            setTtl.ExecuteNonQuery();
        }

        return result.Scripts.Select(s => s.Name).ToList();
    }

    private static void Execute(NpgsqlConnection connection, string sql)
    {
        using var command = new NpgsqlCommand(sql, connection);
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
