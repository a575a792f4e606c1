using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Testcontainers.PostgreSql;
using Testcontainers.RabbitMq;
using Workers.Core.Hosting;
using Workers.Migrator;

[assembly: AssemblyFixture(typeof(Workers.Tests.Infrastructure.ServicesFixture))]

namespace Workers.Tests.Infrastructure;

/// <summary>
/// Real PostgreSQL and RabbitMQ for every integration test, found in this order: connection settings from the
/// environment (<c>ConnectionStrings__PostgresAdmin</c>, <c>RabbitMq__*</c>); Testcontainers where a Docker engine
/// answers; else the repository's local-process script (<c>compose/local/services.sh up</c>). Tests isolate themselves
/// with a fresh database and a fresh virtual host each, so they run in any order and in parallel.
/// </summary>
public sealed class ServicesFixture : IAsyncLifetime
{
    private readonly SemaphoreSlim _migrations = new(1);
    private PostgreSqlContainer? _postgresContainer;
    private RabbitMqContainer? _rabbitContainer;

    public NpgsqlConnectionStringBuilder PostgresAdmin { get; private set; } = new();

    public RabbitMqOptions Rabbit { get; private set; } = new();

    public HttpClient Management { get; private set; } = new();

    public string Source { get; private set; } = "";

    public async ValueTask InitializeAsync()
    {
        var environment = Environment.GetEnvironmentVariable("ConnectionStrings__PostgresAdmin");
        if (!string.IsNullOrEmpty(environment) && !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("RabbitMq__Host")))
        {
            Source = "environment";
            Apply(Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
                .ToDictionary(e => (string)e.Key, e => (string?)e.Value ?? ""));
        }
        else if (DockerAnswers())
        {
            Source = "testcontainers";
            await StartContainersAsync();
        }
        else
        {
            Source = "local script";
            Apply(await LocalServices.UpAsync());
        }

        Management = new HttpClient { BaseAddress = new Uri($"http://{Rabbit.Host}:{Rabbit.ManagementPort}/api/") };
        Management.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Rabbit.Username}:{Rabbit.Password}")));
    }

    public async ValueTask DisposeAsync()
    {
        Management.Dispose();
        _migrations.Dispose();
        if (_postgresContainer is not null)
        {
            await _postgresContainer.DisposeAsync();
        }

        if (_rabbitContainer is not null)
        {
            await _rabbitContainer.DisposeAsync();
        }
    }

    /// <summary>A new database with every migration applied; returns its app-role connection.</summary>
    public async Task<TestDatabase> CreateDatabaseAsync()
    {
        var name = $"t_{Guid.NewGuid():N}"[..20];
        var admin = new NpgsqlConnectionStringBuilder(PostgresAdmin.ConnectionString) { Database = name, Pooling = false };
        var app = new NpgsqlConnectionStringBuilder(PostgresAdmin.ConnectionString)
        {
            Database = name, Username = "workers_app", Password = "workers_app", MaxPoolSize = 50,
        };
        // Roles are cluster-wide: two migrations of fresh databases at once race on them ("tuple concurrently updated").
        await _migrations.WaitAsync();
        try
        {
            await Task.Run(() => MigrationRunner.Apply(admin, app, MigrationRunner.DefaultDirectory, NullLogger.Instance));
        }
        finally
        {
            _migrations.Release();
        }

        return new TestDatabase(this, name, admin, app);
    }

    /// <summary>A new RabbitMQ virtual host the test's processes use and nobody else sees.</summary>
    public async Task<RabbitMqOptions> CreateVhostAsync()
    {
        var vhost = $"t-{Guid.NewGuid():N}"[..14];
        (await Management.PutAsync($"vhosts/{vhost}", null)).EnsureSuccessStatusCode();
        (await Management.PutAsJsonAsync($"permissions/{vhost}/{Rabbit.Username}",
            new { configure = ".*", write = ".*", read = ".*" })).EnsureSuccessStatusCode();
        return new RabbitMqOptions
        {
            Host = Rabbit.Host, Port = Rabbit.Port, Username = Rabbit.Username, Password = Rabbit.Password,
            VirtualHost = vhost, ManagementPort = Rabbit.ManagementPort,
        };
    }

    public async Task DeleteVhostAsync(string vhost) => await Management.DeleteAsync($"vhosts/{vhost}");

    internal async Task DropDatabaseAsync(string name)
    {
        await using var connection = new NpgsqlConnection(
            new NpgsqlConnectionStringBuilder(PostgresAdmin.ConnectionString) { Database = "postgres", Pooling = false }.ConnectionString);
        await connection.OpenAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)", connection);
        await drop.ExecuteNonQueryAsync();
    }

    private void Apply(IReadOnlyDictionary<string, string> settings)
    {
        PostgresAdmin = new NpgsqlConnectionStringBuilder(settings["ConnectionStrings__PostgresAdmin"]);
        Rabbit = new RabbitMqOptions
        {
            Host = settings["RabbitMq__Host"],
            Port = int.Parse(settings["RabbitMq__Port"], System.Globalization.CultureInfo.InvariantCulture),
            Username = settings["RabbitMq__Username"],
            Password = settings["RabbitMq__Password"],
            ManagementPort = int.Parse(settings["RabbitMq__ManagementPort"], System.Globalization.CultureInfo.InvariantCulture),
        };
    }

    private async Task StartContainersAsync()
    {
        _postgresContainer = new PostgreSqlBuilder("postgres:15-alpine").WithUsername("postgres").WithPassword("postgres").Build();
        _rabbitContainer = new RabbitMqBuilder("rabbitmq:3.10-management").WithUsername("workers").WithPassword("workers")
            .WithPortBinding(15672, true).Build();
        await Task.WhenAll(_postgresContainer.StartAsync(), _rabbitContainer.StartAsync());
        PostgresAdmin = new NpgsqlConnectionStringBuilder(_postgresContainer.GetConnectionString());
        Rabbit = new RabbitMqOptions
        {
            Host = _rabbitContainer.Hostname,
            Port = _rabbitContainer.GetMappedPublicPort(5672),
            Username = "workers",
            Password = "workers",
            ManagementPort = _rabbitContainer.GetMappedPublicPort(15672),
        };
    }

    private static bool DockerAnswers()
    {
        if (Environment.GetEnvironmentVariable("WORKERS_TEST_NO_DOCKER") == "1"
            || (!File.Exists("/var/run/docker.sock") && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("DOCKER_HOST"))))
        {
            return false;
        }

        try
        {
            using var docker = Process.Start(new ProcessStartInfo("docker", "info --format {{.ServerVersion}}")
            {
                RedirectStandardOutput = true, RedirectStandardError = true,
            });
            return docker is not null && docker.WaitForExit(10_000) && docker.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}
