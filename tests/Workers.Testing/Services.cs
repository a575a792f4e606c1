using System.Globalization;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Workers.Core.Hosting;
using Workers.Core.Messaging;
using Workers.Migrator;

namespace Workers.Testing;

/// <summary>
/// Real PostgreSQL and RabbitMQ, found in this order: connection settings from the environment
/// (<c>ConnectionStrings__PostgresAdmin</c>, <c>RabbitMq__*</c>); Testcontainers where a Docker engine answers; else the
/// repository's local-process script (<c>compose/local/services.sh up</c>). Users isolate themselves with a fresh
/// database and a fresh virtual host each, so they run in any order and in parallel. Disposing stops what this instance
/// started (the containers, or the local services when they were not running before) and nothing else.
/// </summary>
public sealed class Services : IAsyncDisposable
{
    // Roles are cluster-wide: two migrations of fresh databases at once race on them ("tuple concurrently updated").
    private readonly SemaphoreSlim _migrations = new(1);
    private readonly string _names;
    private readonly int _adminCommandTimeout;
    private readonly Func<ValueTask>? _stop;

    private Services(IReadOnlyDictionary<string, string> settings, string source, Func<ValueTask>? stop, string names,
        int adminCommandTimeout)
    {
        PostgresAdmin = new NpgsqlConnectionStringBuilder(settings["ConnectionStrings__PostgresAdmin"]);
        Rabbit = new RabbitMqOptions
        {
            Host = settings["RabbitMq__Host"],
            Port = int.Parse(settings["RabbitMq__Port"], CultureInfo.InvariantCulture),
            Username = settings["RabbitMq__Username"],
            Password = settings["RabbitMq__Password"],
            ManagementPort = settings.TryGetValue("RabbitMq__ManagementPort", out var management)
                ? int.Parse(management, CultureInfo.InvariantCulture)
                : new RabbitMqOptions().ManagementPort,
            Nodes = settings.TryGetValue("RabbitMq__Nodes", out var nodes) && nodes.Length > 0 ? nodes : null,
            ManagementNodes = settings.TryGetValue("RabbitMq__ManagementNodes", out var managementNodes) && managementNodes.Length > 0
                ? managementNodes : null,
        };
        // services.sh up --ha: the hosts' logins go through PgBouncer (one per node), the admin and leases direct.
        PooledHosts = settings.TryGetValue("WORKERS_PGBOUNCER_HOSTS", out var pooled) && pooled.Length > 0 ? pooled : null;
        Source = source;
        _stop = stop;
        _names = names;
        _adminCommandTimeout = adminCommandTimeout;
        // On the HA topology a fault test kills a node: the fixture's calls go on to the next one.
        Management = BrokerConnections.ManagementClient(Rabbit, new System.Net.NetworkCredential(Rabbit.Username, Rabbit.Password));
        Management.Timeout = TimeSpan.FromSeconds(100);
    }

    public NpgsqlConnectionStringBuilder PostgresAdmin { get; }

    /// <summary>PgBouncer's <c>host:port</c> list when the services are the HA topology (<c>services.sh up --ha</c>).</summary>
    public string? PooledHosts { get; }

    /// <summary>The producer's login: may only publish to the requests exchange (on each virtual host made here).</summary>
    public BrokerLogin Producer { get; private set; } = null!;

    /// <summary>The workers' login.</summary>
    public BrokerLogin Worker { get; private set; } = null!;

    /// <summary>The notifiers' login.</summary>
    public BrokerLogin Notifier { get; private set; } = null!;

    /// <summary>The notifier admin page's management API login (tag <c>management</c>, no permission on the vhost).</summary>
    public BrokerLogin Monitor { get; private set; } = null!;

    public RabbitMqOptions Rabbit { get; }

    /// <summary>RabbitMQ's management HTTP API, as the administrator.</summary>
    public HttpClient Management { get; }

    /// <summary>Where the services came from: <c>environment</c>, <c>testcontainers</c> or <c>local script</c>.</summary>
    public string Source { get; }

    /// <param name="names">
    /// Start of every database (<c>{names}_…</c>) and virtual host (<c>{names}-…</c>) made here, so that leftovers of a
    /// killed run can be told apart and removed (<see cref="RemoveLeftoversAsync"/>).
    /// </param>
    /// <param name="adminCommandTimeoutSeconds">For <see cref="TestDatabase"/>'s superuser commands: a benchmark seeds
    /// millions of rows in one, a test wants a hung one to fail quickly.</param>
    public static async Task<Services> FindOrStartAsync(string names, int adminCommandTimeoutSeconds = 30)
    {
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("ConnectionStrings__PostgresAdmin"))
            && !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("RabbitMq__Host")))
        {
            var environment = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
                .ToDictionary(e => (string)e.Key, e => (string?)e.Value ?? "");
            return await WithLoginsAsync(new Services(environment, "environment", null, names, adminCommandTimeoutSeconds), environment);
        }

        if (ServiceContainers.DockerAnswers())
        {
            var containers = await ServiceContainers.StartAsync();
            return await WithLoginsAsync(
                new Services(containers.Settings, "testcontainers", containers.DisposeAsync, names, adminCommandTimeoutSeconds),
                containers.Settings);
        }

        // Someone else's running services stay running; the ones started here are stopped again.
        var wasRunning = await LocalServices.RunningAsync();
        var settings = await LocalServices.UpAsync();
        return await WithLoginsAsync(new Services(settings, "local script", wasRunning ? null : async () => await LocalServices.DownAsync(),
            names, adminCommandTimeoutSeconds), settings);
    }

    /// <summary>
    /// The HA topology (<c>services.sh up --ha</c>) from the file its <c>env</c> printed (<c>KEY=VALUE</c> lines,
    /// values single-quoted where the shell needs it), or null when <paramref name="path"/> is empty or missing.
    /// </summary>
    public static async Task<Services?> FromEnvFileAsync(string? path, string names)
    {
        if (string.IsNullOrEmpty(path) || !File.Exists(path))
        {
            return null;
        }

        var settings = new Dictionary<string, string>();
        foreach (var line in await File.ReadAllLinesAsync(path))
        {
            var equals = line.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0)
            {
                var value = line[(equals + 1)..];
                settings[line[..equals]] = value.Length >= 2 && value[0] == '\'' && value[^1] == '\''
                    ? value[1..^1].Replace("'\\''", "'", StringComparison.Ordinal)
                    : value;
            }
        }

        return await WithLoginsAsync(new Services(settings, "services.sh up --ha", null, names, 30), settings);
    }

    /// <summary>
    /// The component logins: services.sh's (<c>WORKERS_AMQP_URL_PRODUCER</c>, <c>_WORKER</c>, <c>_NOTIFIER</c>) when the
    /// settings have them; otherwise (Testcontainers, a broker from the environment) made here through the management
    /// API as <c>{names}-producer</c> ..., with fresh random passwords and no tag. Either way they get permissions only on
    /// the virtual hosts made here (<see cref="CreateVhostAsync"/>).
    /// </summary>
    private static async Task<Services> WithLoginsAsync(Services services, IReadOnlyDictionary<string, string> settings)
    {
        try
        {
            async Task<BrokerLogin> LoginAsync(string component, string tags = "")
            {
                if (settings.TryGetValue($"WORKERS_AMQP_URL_{component.ToUpperInvariant()}", out var url) && url.Length > 0)
                {
                    return BrokerLogin.FromUrl(url);
                }

                var login = new BrokerLogin($"{services._names}-{component}", Convert.ToHexString(RandomNumberGenerator.GetBytes(18)));
                (await services.Management.PutAsJsonAsync(new Uri($"users/{Uri.EscapeDataString(login.Username)}", UriKind.Relative),
                    new { password = login.Password, tags })).EnsureSuccessStatusCode();
                return login;
            }

            services.Producer = await LoginAsync("producer");
            services.Worker = await LoginAsync("worker");
            services.Notifier = await LoginAsync("notifier");
            services.Monitor = await LoginAsync("monitor", "management");
            return services;
        }
        catch
        {
            await services.DisposeAsync();
            throw;
        }
    }

    /// <summary>A new database with every migration applied; returns its superuser and app-role connections.</summary>
    // Login roles are cluster-wide, and every migration sets their passwords, so one password for this whole run;
    // random, since the hosts refuse published ones. A child process (the benchmark the smoke test starts) inherits it
    // through the environment: with a password of its own, its migration would lock the other tests' new connections
    // out while it runs, and theirs would lock out its own.
    private readonly string _loginPassword = SharedLoginPassword();

    private static string SharedLoginPassword()
    {
        const string variable = "WORKERS_TEST_LOGIN_PASSWORD";
        if (Environment.GetEnvironmentVariable(variable) is not { Length: > 0 } password)
        {
            password = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
            Environment.SetEnvironmentVariable(variable, password);
        }

        return password;
    }

    public async Task<TestDatabase> CreateDatabaseAsync(int appPoolSize = 50)
    {
        var name = $"{_names}_{Guid.NewGuid():N}"[..(_names.Length + 17)];
        var admin = new NpgsqlConnectionStringBuilder(PostgresAdmin.ConnectionString) { Database = name, Pooling = false };
        NpgsqlConnectionStringBuilder Direct(string role) => new(PostgresAdmin.ConnectionString)
        {
            Database = name, Username = role, Password = _loginPassword, MaxPoolSize = appPoolSize,
            HostRecheckSeconds = PooledHosts is null ? 10 : 2, // as services.sh env --ha: a new primary is found sooner
        };
        NpgsqlConnectionStringBuilder Login(string role)
        {
            var login = Direct(role);
            if (PooledHosts is not null)
            {
                // Through a transaction pooler: nothing prepared, nothing reset (the hosts' HA connection strings say the same).
                login.Host = PooledHosts;
                login.TargetSessionAttributes = "primary";
                login.MaxAutoPrepare = 0;
                login.NoResetOnClose = true;
            }

            return login;
        }
        var (app, worker, notifier, @operator) = (Login("workers_app"), Login("workers_worker"), Login("workers_notifier"), Login("workers_operator"));
        var leases = Direct("workers_worker");
        await _migrations.WaitAsync();
        try
        {
            await Task.Run(() => MigrationRunner.Apply(admin, [app, worker, notifier, @operator], MigrationRunner.DefaultDirectory, NullLogger.Instance));
        }
        finally
        {
            _migrations.Release();
        }

        return new TestDatabase(this, name, admin, app, worker, notifier, @operator, leases, _adminCommandTimeout);
    }

    /// <summary>A new RabbitMQ virtual host its user's processes use and nobody else sees; the admin login (returned) may
    /// do anything there, each component login exactly what <see cref="BrokerPermissions"/> says.</summary>
    public async Task<RabbitMqOptions> CreateVhostAsync()
    {
        var vhost = $"{_names}-{Guid.NewGuid():N}"[..(_names.Length + 13)];
        (await Management.PutAsync(new Uri($"vhosts/{vhost}", UriKind.Relative), null)).EnsureSuccessStatusCode();
        foreach (var (login, permissions) in new[]
                 {
                     (Rabbit.Username, BrokerPermissions.Admin), (Producer.Username, BrokerPermissions.Producer),
                     (Worker.Username, BrokerPermissions.Worker), (Notifier.Username, BrokerPermissions.Notifier),
                     (Monitor.Username, BrokerPermissions.Monitor),
                 })
        {
            (await Management.PutAsJsonAsync($"permissions/{vhost}/{Uri.EscapeDataString(login)}",
                new { configure = permissions.Configure, write = permissions.Write, read = permissions.Read })).EnsureSuccessStatusCode();
        }
        return new RabbitMqOptions
        {
            Host = Rabbit.Host, Port = Rabbit.Port, Username = Rabbit.Username, Password = Rabbit.Password,
            VirtualHost = vhost, ManagementPort = Rabbit.ManagementPort, Nodes = Rabbit.Nodes, ManagementNodes = Rabbit.ManagementNodes,
        };
    }

    public async Task DeleteVhostAsync(string vhost) =>
        await Management.DeleteAsync(new Uri($"vhosts/{Uri.EscapeDataString(vhost)}", UriKind.Relative));

    /// <summary>Messages ready + unacknowledged per queue of a virtual host (management API; its figures lag a few seconds).</summary>
    public async Task<Dictionary<string, long>> QueueDepthsAsync(string vhost)
    {
        var queues = await Management.GetFromJsonAsync<List<QueueInfo>>(
            new Uri($"queues/{Uri.EscapeDataString(vhost)}?columns=name,messages_ready,messages_unacknowledged", UriKind.Relative)) ?? [];
        return queues.ToDictionary(q => q.Name, q => q.Messages_Ready + q.Messages_Unacknowledged);
    }

    /// <summary>Each queue of a virtual host whose name starts with <paramref name="prefix"/>, with the routing keys it is
    /// bound with from <paramref name="exchange"/>, directly or through MassTransit's exchange of the same name
    /// (management API; current, bindings do not lag).</summary>
    public async Task<Dictionary<string, HashSet<string>>> BindingsAsync(string vhost, string prefix, string exchange)
    {
        var bindings = await Management.GetFromJsonAsync<List<BindingInfo>>(
            new Uri($"exchanges/{Uri.EscapeDataString(vhost)}/{Uri.EscapeDataString(exchange)}/bindings/source", UriKind.Relative)) ?? [];
        return bindings.Where(b => b.Destination.StartsWith(prefix, StringComparison.Ordinal))
            .GroupBy(b => b.Destination)
            .ToDictionary(g => g.Key, g => g.Select(b => b.Routing_Key).ToHashSet());
    }

    /// <summary>Databases and virtual hosts a killed earlier run left behind (names start with this instance's prefix).</summary>
    public async Task<(int Databases, int Vhosts)> RemoveLeftoversAsync()
    {
        var databases = new List<string>();
        await using (var connection = await OpenPostgresDatabaseAsync())
        {
            await using var list = new NpgsqlCommand("SELECT datname FROM pg_database WHERE datname LIKE $1", connection);
            list.Parameters.AddWithValue(_names.Replace("_", "\\_", StringComparison.Ordinal) + "\\_%");
            await using var reader = await list.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                databases.Add(reader.GetString(0));
            }
        }

        foreach (var name in databases)
        {
            await DropDatabaseAsync(name);
        }

        var vhosts = (await Management.GetFromJsonAsync<List<VhostInfo>>(new Uri("vhosts", UriKind.Relative)) ?? [])
            .Select(v => v.Name).Where(n => n.StartsWith($"{_names}-", StringComparison.Ordinal)).ToList();
        foreach (var vhost in vhosts)
        {
            await DeleteVhostAsync(vhost);
        }

        return (databases.Count, vhosts.Count);
    }

    public async ValueTask DisposeAsync()
    {
        Management.Dispose();
        _migrations.Dispose();
        if (_stop is not null)
        {
            await _stop();
        }
    }

    internal async Task DropDatabaseAsync(string name)
    {
        await using var connection = await OpenPostgresDatabaseAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", connection);
        await drop.ExecuteNonQueryAsync();
    }

    private async Task<NpgsqlConnection> OpenPostgresDatabaseAsync()
    {
        var connection = new NpgsqlConnection(
            new NpgsqlConnectionStringBuilder(PostgresAdmin.ConnectionString) { Database = "postgres", Pooling = false }.ConnectionString);
        await connection.OpenAsync();
        return connection;
    }

    private sealed record VhostInfo(string Name);

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1707", Justification = "management API field names")]
    private sealed record QueueInfo(string Name, long Messages_Ready, long Messages_Unacknowledged);

    private sealed record BindingInfo(string Destination, string Routing_Key);
}
