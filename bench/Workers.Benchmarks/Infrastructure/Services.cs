using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Workers.Core.Hosting;
using Workers.Migrator;

namespace Workers.Benchmarks.Infrastructure;

/// <summary>
/// PostgreSQL and RabbitMQ as the tests find them: <c>ConnectionStrings__PostgresAdmin</c> and <c>RabbitMq__*</c> from
/// the environment, else <c>compose/local/services.sh up</c>. Each scenario gets a fresh database and virtual host.
/// </summary>
internal sealed class Services : IDisposable
{
    private Services(NpgsqlConnectionStringBuilder admin, RabbitMqOptions rabbit, string source)
    {
        PostgresAdmin = admin;
        Rabbit = rabbit;
        Source = source;
        Management = new HttpClient { BaseAddress = new Uri($"http://{rabbit.Host}:{rabbit.ManagementPort}/api/") };
        Management.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{rabbit.Username}:{rabbit.Password}")));
    }

    public NpgsqlConnectionStringBuilder PostgresAdmin { get; }

    public RabbitMqOptions Rabbit { get; }

    public string Source { get; }

    public HttpClient Management { get; }

    public static async Task<Services> FindAsync()
    {
        var admin = Environment.GetEnvironmentVariable("ConnectionStrings__PostgresAdmin");
        IReadOnlyDictionary<string, string> settings;
        string source;
        if (!string.IsNullOrEmpty(admin) && !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("RabbitMq__Host")))
        {
            source = "environment";
            settings = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
                .ToDictionary(e => (string)e.Key, e => (string?)e.Value ?? "");
        }
        else
        {
            source = "compose/local/services.sh";
            settings = await LocalServicesUpAsync();
        }

        var rabbit = new RabbitMqOptions
        {
            Host = settings["RabbitMq__Host"],
            Port = int.Parse(settings["RabbitMq__Port"], CultureInfo.InvariantCulture),
            Username = settings["RabbitMq__Username"],
            Password = settings["RabbitMq__Password"],
            ManagementPort = int.Parse(settings.TryGetValue("RabbitMq__ManagementPort", out var m) ? m : "15672", CultureInfo.InvariantCulture),
        };
        return new Services(new NpgsqlConnectionStringBuilder(settings["ConnectionStrings__PostgresAdmin"]), rabbit, source);
    }

    /// <summary>A migrated database of its own, dropped when disposed.</summary>
    public async Task<BenchDatabase> CreateDatabaseAsync(int appPoolSize = 50)
    {
        var name = $"bench_{Guid.NewGuid():N}"[..22];
        var admin = new NpgsqlConnectionStringBuilder(PostgresAdmin.ConnectionString) { Database = name, Pooling = false };
        var app = new NpgsqlConnectionStringBuilder(PostgresAdmin.ConnectionString)
        {
            Database = name,
            Username = "workers_app",
            Password = "workers_app",
            MaxPoolSize = appPoolSize,
        };
        await Task.Run(() => MigrationRunner.Apply(admin, app, MigrationRunner.DefaultDirectory, NullLogger.Instance));
        return new BenchDatabase(this, name, admin, app);
    }

    public async Task<RabbitMqOptions> CreateVhostAsync()
    {
        var vhost = $"bench-{Guid.NewGuid():N}"[..16];
        (await Management.PutAsync(new Uri($"vhosts/{vhost}", UriKind.Relative), null)).EnsureSuccessStatusCode();
        (await Management.PutAsJsonAsync($"permissions/{vhost}/{Rabbit.Username}",
            new { configure = ".*", write = ".*", read = ".*" })).EnsureSuccessStatusCode();
        return new RabbitMqOptions
        {
            Host = Rabbit.Host,
            Port = Rabbit.Port,
            Username = Rabbit.Username,
            Password = Rabbit.Password,
            VirtualHost = vhost,
            ManagementPort = Rabbit.ManagementPort,
        };
    }

    public async Task DeleteVhostAsync(string vhost) =>
        await Management.DeleteAsync(new Uri($"vhosts/{Uri.EscapeDataString(vhost)}", UriKind.Relative));

    public async Task DropDatabaseAsync(string name)
    {
        await using var connection = new NpgsqlConnection(
            new NpgsqlConnectionStringBuilder(PostgresAdmin.ConnectionString) { Database = "postgres", Pooling = false }.ConnectionString);
        await connection.OpenAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", connection);
        await drop.ExecuteNonQueryAsync();
    }

    /// <summary>Databases and virtual hosts a killed earlier run left behind (names start with <c>bench</c>).</summary>
    public async Task<(int Databases, int Vhosts)> RemoveLeftoversAsync()
    {
        var databases = new List<string>();
        await using (var connection = new NpgsqlConnection(
            new NpgsqlConnectionStringBuilder(PostgresAdmin.ConnectionString) { Database = "postgres", Pooling = false }.ConnectionString))
        {
            await connection.OpenAsync();
            await using var list = new NpgsqlCommand("SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_%'", connection);
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
            .Select(v => v.Name).Where(n => n.StartsWith("bench-", StringComparison.Ordinal)).ToList();
        foreach (var vhost in vhosts)
        {
            await DeleteVhostAsync(vhost);
        }

        return (databases.Count, vhosts.Count);
    }

    /// <summary>Messages ready + unacknowledged per queue of a virtual host (management API; its figures lag a few seconds).</summary>
    public async Task<Dictionary<string, long>> QueueDepthsAsync(string vhost)
    {
        var queues = await Management.GetFromJsonAsync<List<QueueInfo>>(
            new Uri($"queues/{Uri.EscapeDataString(vhost)}?columns=name,messages_ready,messages_unacknowledged", UriKind.Relative)) ?? [];
        return queues.ToDictionary(q => q.Name, q => q.Messages_Ready + q.Messages_Unacknowledged);
    }

    public void Dispose() => Management.Dispose();

    private static async Task<IReadOnlyDictionary<string, string>> LocalServicesUpAsync()
    {
        var script = Path.Combine(Repo.Root, "compose", "local", "services.sh");
        var start = new ProcessStartInfo("bash", [script, "up"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start bash");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{script} up failed ({process.ExitCode}): {await errors}");
        }

        return (await output).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.StartsWith("export ", StringComparison.Ordinal) ? line[7..] : line)
            .Where(line => line.Contains('=', StringComparison.Ordinal) && !line.StartsWith('#'))
            .Select(line => (Key: line[..line.IndexOf('=', StringComparison.Ordinal)],
                Value: line[(line.IndexOf('=', StringComparison.Ordinal) + 1)..].Trim('\'', '"')))
            .ToDictionary(p => p.Key, p => p.Value);
    }

    private sealed record VhostInfo(string Name);

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1707", Justification = "management API field names")]
    private sealed record QueueInfo(string Name, long Messages_Ready, long Messages_Unacknowledged);
}

/// <summary>A migrated database of one scenario (or one run of it).</summary>
internal sealed class BenchDatabase(Services services, string name, NpgsqlConnectionStringBuilder admin, NpgsqlConnectionStringBuilder app)
    : IAsyncDisposable
{
    public string Name => name;

    /// <summary>Superuser, for seeding and reading counters.</summary>
    public NpgsqlConnectionStringBuilder Admin => admin;

    /// <summary>The role the worker and notifier log in as.</summary>
    public NpgsqlConnectionStringBuilder App => app;

    public async Task<NpgsqlConnection> OpenAdminAsync()
    {
        var connection = new NpgsqlConnection(admin.ConnectionString);
        await connection.OpenAsync();
        return connection;
    }

    public async Task<T> ScalarAsync<T>(string sql)
    {
        await using var connection = await OpenAdminAsync();
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 600 };
        return (T)(await command.ExecuteScalarAsync())!;
    }

    public async Task ExecuteAsync(string sql)
    {
        await using var connection = await OpenAdminAsync();
        await using var command = new NpgsqlCommand(sql, connection) { CommandTimeout = 600 };
        await command.ExecuteNonQueryAsync();
    }

    public async ValueTask DisposeAsync() => await services.DropDatabaseAsync(name);
}

internal static class Repo
{
    public static string Root { get; } = FindRoot();

    public static string HostDll(string project)
    {
        var path = Path.Combine(Root, "src", project, "bin", "Release", "net10.0", $"{project}.dll");
        return File.Exists(path) ? path : throw new FileNotFoundException($"build {project} first: dotnet build -c Release", path);
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Workers.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Workers.sln not found above " + AppContext.BaseDirectory);
    }
}
