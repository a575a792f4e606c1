using Workers.Core.Hosting;

namespace Workers.Testing;

/// <summary>A component's broker login (producer, worker, notifier), as the fixture found or created it.</summary>
public sealed record BrokerLogin(string Username, string Password)
{
    /// <summary>From <c>amqp://user:pass@host:port/vhost</c> (services.sh's <c>WORKERS_AMQP_URL_*</c>).</summary>
    public static BrokerLogin FromUrl(string url)
    {
        var userInfo = new Uri(url).UserInfo.Split(':', 2);
        return new BrokerLogin(Uri.UnescapeDataString(userInfo[0]), Uri.UnescapeDataString(userInfo[1]));
    }

    /// <summary>The same broker and virtual host as <paramref name="options"/>, logged in as this login.</summary>
    public RabbitMqOptions On(RabbitMqOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new RabbitMqOptions
        {
            Host = options.Host, Port = options.Port, Username = Username, Password = Password, VirtualHost = options.VirtualHost,
            ManagementPort = options.ManagementPort, Nodes = options.Nodes, ManagementNodes = options.ManagementNodes,
        };
    }

    /// <summary>Settings for a host process: this login instead of the admin one.</summary>
    public Dictionary<string, string> Settings() => new() { ["RabbitMq__Username"] = Username, ["RabbitMq__Password"] = Password };
}
