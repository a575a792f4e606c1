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

    /// <summary>HTTP port of the management plugin; only tests and operators read it.</summary>
    [Range(1, 65535)]
    public int ManagementPort { get; set; } = 15672;
}
