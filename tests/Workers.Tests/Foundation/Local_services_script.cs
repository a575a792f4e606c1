using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Foundation;

/// <summary>compose/local/services.sh refuses a taken port by name, and everything it runs listens on loopback only.</summary>
public sealed class Local_services_script(ServicesFixture services)
{
    [Fact]
    public async Task Up_names_a_port_that_is_already_taken_and_fails()
    {
        using var squatter = new TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        var port = ((IPEndPoint)squatter.LocalEndpoint).Port;
        var data = Directory.CreateTempSubdirectory("services-");
        try
        {
            var (exit, output) = await RunAsync("up", new Dictionary<string, string>
            {
                ["WORKERS_LOCAL_DIR"] = data.FullName,
                ["WORKERS_PG_PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["WORKERS_AMQP_PORT"] = "56672", ["WORKERS_RABBIT_MGMT_PORT"] = "56673",
                ["WORKERS_RABBIT_DIST_PORT"] = "56674", ["WORKERS_EPMD_PORT"] = "56675",
            });
            Assert.NotEqual(0, exit);
            Assert.Contains($"port {port} (WORKERS_PG_PORT) is already in use", output, StringComparison.Ordinal);
        }
        finally
        {
            data.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task The_services_listen_on_loopback_only()
    {
        if (services.Source != "local script")
        {
            Assert.Skip($"services come from {services.Source}, not from the local script");
        }

        using var ss = Process.Start(new ProcessStartInfo("ss", "-ltnpH") { RedirectStandardOutput = true })!;
        var listening = (await ss.StandardOutput.ReadToEndAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(l => l.Contains("\"postgres\"", StringComparison.Ordinal) || l.Contains("\"beam.smp\"", StringComparison.Ordinal)
                        || l.Contains("\"epmd\"", StringComparison.Ordinal))
            .ToList();
        Assert.NotEmpty(listening);
        Assert.All(listening, l => Assert.Matches(@"\s(127\.0\.0\.1|\[::1\]):\d+\s", l));
    }

    private static async Task<(int Exit, string Output)> RunAsync(string command, IReadOnlyDictionary<string, string> environment)
    {
        var (exit, output, errors) = await LocalServices.RunAsync(command, environment);
        return (exit, output + errors);
    }
}
