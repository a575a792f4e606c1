using Microsoft.Extensions.Configuration;
using Npgsql;

namespace Workers.Core.Hosting;

/// <summary>Reads and checks the PostgreSQL connection strings, naming the key when one is wrong.</summary>
public static class ConnectionStrings
{
    /// <summary>The host's own connection: the worker logs in as <c>workers_worker</c>, the notifier as
    /// <c>workers_notifier</c>.</summary>
    public const string Postgres = "Postgres";

    /// <summary>A worker's partition leases (session-level advisory locks), when <see cref="Postgres"/> goes through a
    /// transaction pooler such as PgBouncer, which cannot keep a session's lock: a direct connection to the primary as
    /// <c>workers_worker</c>. Optional; <see cref="Postgres"/> when absent.</summary>
    public const string PostgresLeases = "PostgresLeases";

    /// <summary>The migrator sets <c>workers_worker</c>'s password from this one.</summary>
    public const string PostgresWorker = "PostgresWorker";

    /// <summary>The migrator sets <c>workers_notifier</c>'s password from this one.</summary>
    public const string PostgresNotifier = "PostgresNotifier";

    /// <summary>The notifier's admin API logs in as <c>workers_operator</c> with this one (and the migrator sets that
    /// role's password from it); without it the admin API is off.</summary>
    public const string PostgresOperator = "PostgresOperator";

    /// <summary>The migrator's admin connection (a superuser or a role with CREATEROLE).</summary>
    public const string PostgresAdmin = "PostgresAdmin";

    /// <summary>Whether the configured string sets <paramref name="keyword"/> itself (spelt with or without spaces),
    /// as opposed to leaving it at Npgsql's default.</summary>
    public static bool Sets(IConfiguration configuration, string name, string keyword)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(keyword);
        var given = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = configuration.GetConnectionString(name) ?? "" };
        return given.ContainsKey(keyword) || given.ContainsKey(keyword.Replace(" ", "", StringComparison.Ordinal));
    }

    public static NpgsqlConnectionStringBuilder Read(IConfiguration configuration, string name)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var value = configuration.GetConnectionString(name);
        if (string.IsNullOrWhiteSpace(value))
        {
            throw new InvalidConfigurationException($"ConnectionStrings:{name} is missing (environment: ConnectionStrings__{name})");
        }

        try
        {
            var builder = new NpgsqlConnectionStringBuilder(value);
            if (string.IsNullOrEmpty(builder.Host))
            {
                throw new InvalidConfigurationException($"ConnectionStrings:{name} has no Host");
            }

            return builder;
        }
        catch (ArgumentException e)
        {
            // The builder's message names the bad keyword, never the value, so no password reaches the log.
            throw new InvalidConfigurationException($"ConnectionStrings:{name} is malformed: {e.Message}");
        }
    }
}
