using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Workers.Core.Hosting;

/// <summary>
/// Refuses to run with a database login that row-level security does not bind: a superuser, a role with BYPASSRLS,
/// the owner of a table in the schema, or a member of the owner role. Checked before anything else starts; when the
/// database cannot be reached yet, checked as soon as it can, and the host stops then.
/// </summary>
/// <param name="dataSource">The login to check.</param>
/// <param name="lifetime">Stopped when a late check fails.</param>
/// <param name="logger">Where a late check reports.</param>
/// <param name="setting">The connection string it came from, named in the error.</param>
/// <param name="ownRole">What to log in as instead, named in the error.</param>
public sealed class DatabaseLoginCheck(NpgsqlDataSource dataSource, IHostApplicationLifetime lifetime, ILogger<DatabaseLoginCheck> logger,
    string setting, string ownRole) : IHostedService, IDisposable
{
    private readonly CancellationTokenSource _stopping = new();

    /// <summary>The host's own login (<c>ConnectionStrings:Postgres</c>).</summary>
    public DatabaseLoginCheck(NpgsqlDataSource dataSource, IHostApplicationLifetime lifetime, ILogger<DatabaseLoginCheck> logger)
        : this(dataSource, lifetime, logger, $"ConnectionStrings:{ConnectionStrings.Postgres}", "the host's own role (workers_worker or workers_notifier)")
    {
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await CheckAsync(cancellationToken);
        }
        catch (NpgsqlException e) when (e is not PostgresException)
        {
            logger.LogWarning("Database not reachable at start ({Error}); its login is checked once it is", e.GetType().Name);
            _ = Task.Run(() => CheckWhenReachableAsync(_stopping.Token), CancellationToken.None);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping.Cancel();
        return Task.CompletedTask;
    }

    public void Dispose() => _stopping.Dispose();

    private async Task CheckWhenReachableAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(2), cancellationToken);
                await CheckAsync(cancellationToken);
                return;
            }
            catch (InvalidConfigurationException e)
            {
                logger.LogCritical("configuration error: {Error}", e.Message);
                Environment.ExitCode = 2;
                lifetime.StopApplication();
                return;
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException)
            {
                logger.LogDebug("Database still not reachable: {Error}", e.GetType().Name);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task CheckAsync(CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            """
            SELECT r.rolname, r.rolsuper, r.rolbypassrls,
                   EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                           WHERE n.nspname = 'workers' AND c.relowner = r.oid),
                   EXISTS (SELECT 1 FROM pg_roles o WHERE o.rolname = 'workers_migrator' AND pg_has_role(r.oid, o.oid, 'MEMBER'))
            FROM pg_roles r WHERE r.rolname = current_user
            """);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        await reader.ReadAsync(cancellationToken);
        var (role, superuser, bypassRls, ownsTables, memberOfOwner) =
            (reader.GetString(0), reader.GetBoolean(1), reader.GetBoolean(2), reader.GetBoolean(3), reader.GetBoolean(4));
        var why = superuser ? "a superuser" : bypassRls ? "a role with BYPASSRLS" : ownsTables ? "the owner of tables in schema workers"
            : memberOfOwner ? "a member of the schema owner workers_migrator" : null;
        if (why is not null)
        {
            throw new InvalidConfigurationException(
                $"{setting} logs in as '{role}', {why}: row-level security would not bind it. Log in as {ownRole}.");
        }
    }
}
