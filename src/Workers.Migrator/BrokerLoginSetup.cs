using System.Net.Http.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Workers.Core.Hosting;
using Workers.Core.Messaging;

namespace Workers.Migrator;

/// <summary>
/// <c>Workers.Migrator logins</c>: creates (or updates) each component's broker login on the virtual host with exactly
/// the rights <see cref="BrokerPermissions"/> gives it, through the management API, as the admin login of
/// <c>RabbitMq:*</c>. Passwords from <c>BrokerLogins:Worker:Password</c>, <c>:Notifier:Password</c>,
/// <c>:Producer:Password</c>, <c>:Monitor:Password</c>; a component without one is left alone. Idempotent; no tag (so
/// no management access) but the monitor's <c>management</c>.
/// </summary>
public static class BrokerLoginSetup
{
    private static readonly (string Component, string DefaultName, BrokerPermissions Permissions, string Tags)[] Components =
    [
        ("Worker", "workers-worker", BrokerPermissions.Worker, ""),
        ("Notifier", "workers-notifier", BrokerPermissions.Notifier, ""),
        ("Producer", "workers-producer", BrokerPermissions.Producer, ""),
        // Queue depths for the notifier's admin page: the management API, and no permission on the virtual host.
        ("Monitor", "workers-monitor", BrokerPermissions.Monitor, "management"),
    ];

    /// <summary>The configuration keys it reads besides <c>RabbitMq:*</c>.</summary>
    public static IReadOnlyList<string> ConfigurationKeys { get; } =
        [.. Components.SelectMany(c => new[] { $"BrokerLogins:{c.Component}:Username", $"BrokerLogins:{c.Component}:Password" })];

    /// <summary>The login each component uses unless <c>BrokerLogins:{Component}:Username</c> says otherwise.</summary>
    public static string DefaultLogin(string component) => Components.Single(c => c.Component == component).DefaultName;

    public static async Task<IReadOnlyList<string>> ApplyAsync(IConfiguration configuration, RabbitMqOptions admin, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        ArgumentNullException.ThrowIfNull(admin);
        var wanted = Components
            .Select(c => (Name: configuration[$"BrokerLogins:{c.Component}:Username"] is { Length: > 0 } name ? name : c.DefaultName,
                Password: configuration[$"BrokerLogins:{c.Component}:Password"], c.Permissions, c.Tags))
            .Where(c => !string.IsNullOrEmpty(c.Password))
            .ToList();
        if (wanted.Count == 0)
        {
            throw new InvalidConfigurationException(
                "BrokerLogins:Worker:Password, :Notifier:Password, :Producer:Password and :Monitor:Password are all missing; set the ones to create");
        }

        using var http = BrokerConnections.ManagementClient(admin, new System.Net.NetworkCredential(admin.Username, admin.Password));
        var vhost = Uri.EscapeDataString(admin.VirtualHost);
        foreach (var (name, password, permissions, tags) in wanted)
        {
            var user = Uri.EscapeDataString(name);
            await SucceedAsync(await http.PutAsJsonAsync($"users/{user}", new { password, tags }, cancellationToken), $"login {name}");
            await SucceedAsync(await http.PutAsJsonAsync($"permissions/{vhost}/{user}",
                new { configure = permissions.Configure, write = permissions.Write, read = permissions.Read }, cancellationToken),
                $"permissions of {name}");
        }

        return [.. wanted.Select(w => w.Name)];
    }

    private static async Task SucceedAsync(HttpResponseMessage response, string what)
    {
        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                // The API's reason (e.g. "not_authorised"), never the request: it holds a password.
                var reason = (await response.Content.ReadAsStringAsync()).ReplaceLineEndings(" ");
                throw new MigrationFailedException($"RabbitMQ management API refused {what}: {(int)response.StatusCode} {reason[..Math.Min(reason.Length, 200)]}");
            }
        }
    }
}
