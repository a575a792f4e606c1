using System.Diagnostics;
using System.Globalization;
using Testcontainers.PostgreSql;
using Testcontainers.RabbitMq;

namespace Workers.Testing;

/// <summary>PostgreSQL and RabbitMQ (with its management API) in throwaway Docker containers, removed when disposed.</summary>
public sealed class ServiceContainers : IAsyncDisposable
{
    private readonly PostgreSqlContainer _postgres;
    private readonly RabbitMqContainer _rabbit;

    private ServiceContainers(PostgreSqlContainer postgres, RabbitMqContainer rabbit)
    {
        _postgres = postgres;
        _rabbit = rabbit;
    }

    /// <summary>The same settings <c>compose/local/services.sh up</c> prints, pointing at the containers.</summary>
    public IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>
    {
        ["ConnectionStrings__PostgresAdmin"] = _postgres.GetConnectionString(),
        ["RabbitMq__Host"] = _rabbit.Hostname,
        ["RabbitMq__Port"] = _rabbit.GetMappedPublicPort(5672).ToString(CultureInfo.InvariantCulture),
        ["RabbitMq__Username"] = "workers",
        ["RabbitMq__Password"] = "workers",
        ["RabbitMq__ManagementPort"] = _rabbit.GetMappedPublicPort(15672).ToString(CultureInfo.InvariantCulture),
    };

    public static async Task<ServiceContainers> StartAsync()
    {
        var postgres = new PostgreSqlBuilder("postgres:15-alpine").WithUsername("postgres").WithPassword("postgres").Build();
        var rabbit = new RabbitMqBuilder("rabbitmq:3.10-management").WithUsername("workers").WithPassword("workers")
            .WithPortBinding(15672, true).Build();
        var containers = new ServiceContainers(postgres, rabbit);
        try
        {
            await Task.WhenAll(postgres.StartAsync(), rabbit.StartAsync());
            return containers;
        }
        catch
        {
            await containers.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// A Docker engine that answers <c>docker info</c> within 10 s; <c>WORKERS_TEST_NO_DOCKER=1</c> says not to ask.
    /// </summary>
    public static bool DockerAnswers()
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

    public async ValueTask DisposeAsync()
    {
        await _postgres.DisposeAsync();
        await _rabbit.DisposeAsync();
    }
}
