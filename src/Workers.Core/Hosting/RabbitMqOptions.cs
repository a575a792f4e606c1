using System.ComponentModel.DataAnnotations;

namespace Workers.Core.Hosting;

/// <summary>Where the broker is; section <c>RabbitMq</c>.</summary>
public sealed class RabbitMqOptions
{
    public const string SectionName = "RabbitMq";

    [Required(AllowEmptyStrings = false)]
    public string Host { get; set; } = "127.0.0.1";

    [Range(1, 65535)]
    public int Port { get; set; } = 5672;

    [Required(AllowEmptyStrings = false)]
    public string Username { get; set; } = "guest";

    [Required(AllowEmptyStrings = false)]
    public string Password { get; set; } = "guest";

    [Required(AllowEmptyStrings = false)]
    public string VirtualHost { get; set; } = "/";

    /// <summary>
    /// The nodes of a cluster, <c>host:port</c> separated by commas (<c>services.sh up --ha</c> prints all three). When
    /// set, every connection picks one of them that answers, and a host whose node dies reconnects to another;
    /// <see cref="Host"/> and <see cref="Port"/> then only name the node whose management API operators read.
    /// </summary>
    [RegularExpression(@"^\s*[^\s,:]+(:\d{1,5})?(\s*,\s*[^\s,:]+(:\d{1,5})?)*\s*$",
        ErrorMessage = "must be host:port entries separated by commas, e.g. 10.0.0.1:5672,10.0.0.2:5672")]
    public string? Nodes { get; set; }

    /// <summary>The nodes to connect to: <see cref="Nodes"/>, or <see cref="Host"/>:<see cref="Port"/>.</summary>
    public IReadOnlyList<(string Host, int Port)> Endpoints() => HostPorts(Nodes, Port);

    /// <summary>HTTP port of the management plugin; only tests and operators read it.</summary>
    [Range(1, 65535)]
    public int ManagementPort { get; set; } = 15672;

    /// <summary>
    /// The management API of every node of a cluster, <c>host:port</c> separated by commas (<c>services.sh up --ha</c>
    /// prints all three). When set, a management call whose node does not answer is made on the next one, so the
    /// operator page and the setup step outlive a dead node; unset, only <see cref="Host"/>:<see cref="ManagementPort"/>.
    /// </summary>
    [RegularExpression(@"^\s*[^\s,:]+:\d{1,5}(\s*,\s*[^\s,:]+:\d{1,5})*\s*$",
        ErrorMessage = "must be host:port entries separated by commas, e.g. 10.0.0.1:15672,10.0.0.2:15672")]
    public string? ManagementNodes { get; set; }

    /// <summary>The management APIs to call: <see cref="ManagementNodes"/>, or <see cref="Host"/>:<see cref="ManagementPort"/>.</summary>
    public IReadOnlyList<(string Host, int Port)> ManagementEndpoints() => HostPorts(ManagementNodes, ManagementPort);

    /// <summary><paramref name="nodes"/> as a list (an entry without a port gets <paramref name="port"/>), or
    /// <see cref="Host"/>:<paramref name="port"/> when unset.</summary>
    private IReadOnlyList<(string Host, int Port)> HostPorts(string? nodes, int port) =>
        string.IsNullOrWhiteSpace(nodes)
            ? [(Host, port)]
            : [.. nodes.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(node =>
                node.LastIndexOf(':') is var colon and > 0
                    ? (node[..colon], int.Parse(node[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture))
                    : (node, port))];
}
