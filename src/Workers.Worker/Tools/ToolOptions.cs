using System.ComponentModel.DataAnnotations;
using Workers.Contracts;

namespace Workers.Worker.Tools;

/// <summary>
/// The tools a deployment offers beyond the built-in notes: MCP servers by name (<c>Tools:Mcp:NAME</c>), each reached
/// over stdio (a command the worker starts) or HTTP (a URL). A session enables servers by name; a new session has those
/// marked <see cref="McpServerSettings.Default"/>.
/// </summary>
public sealed class ToolOptions : IValidatableObject
{
    public const string Section = "Tools";

    /// <summary>The longest a tool call may take; the model then gets a timeout's text as the result.</summary>
    public TimeSpan CallTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>The most characters of a tool's result the model gets (and the turn keeps); the rest is cut off.</summary>
    public int MaxResultChars { get; set; } = 16_000;

    /// <summary>How long a turn waits for an MCP server to connect (start, handshake, tool list) before going on without it.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>After a failed connection, how long turns go on without that server before it is tried again.</summary>
    public TimeSpan RetryAfter { get; set; } = TimeSpan.FromSeconds(10);

    public Dictionary<string, McpServerSettings> Mcp { get; } = new(StringComparer.Ordinal);

    /// <summary>The configuration's mistakes, checked when the worker starts.</summary>
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (CallTimeout <= TimeSpan.Zero || ConnectTimeout <= TimeSpan.Zero)
        {
            yield return new ValidationResult("Tools:CallTimeout and Tools:ConnectTimeout must be positive");
        }

        if (MaxResultChars < 100)
        {
            yield return new ValidationResult("Tools:MaxResultChars must be at least 100");
        }

        foreach (var (name, server) in Mcp)
        {
            if (!ChatLimits.IsToolServerName(name) || name == "notes")
            {
                yield return new ValidationResult($"Tools:Mcp:{name}: a server's name is a letter, then up to 31 letters, digits or '_' (and not 'notes')");
            }

            if (string.IsNullOrWhiteSpace(server.Command) == string.IsNullOrWhiteSpace(server.Url))
            {
                yield return new ValidationResult($"Tools:Mcp:{name}: set either Command (stdio) or Url (HTTP)");
            }
            else if (server.Url is not null && (!Uri.TryCreate(server.Url, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https")))
            {
                yield return new ValidationResult($"Tools:Mcp:{name}:Url must be an absolute http or https URL");
            }
        }
    }
}

/// <summary>One MCP server.</summary>
public sealed class McpServerSettings
{
    /// <summary>stdio: the program to start. It gets a clean environment: the few variables a process needs to run
    /// (PATH, HOME, …) and <see cref="Environment"/>; never the worker's own (its database and broker secrets).</summary>
    public string? Command { get; set; }

    public List<string> Arguments { get; } = [];

    public string? WorkingDirectory { get; set; }

    /// <summary>stdio: variables the server needs (its API key, say), on top of the clean environment.</summary>
    public Dictionary<string, string> Environment { get; } = new(StringComparer.Ordinal);

    /// <summary>HTTP: the server's endpoint (Streamable HTTP, or SSE for older servers).</summary>
    public string? Url { get; set; }

    /// <summary>HTTP: headers sent with every request (an Authorization header, say).</summary>
    public Dictionary<string, string> Headers { get; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Each call carries the turn's user and session ids in its <c>_meta</c>
    /// (<c>workers/userId</c>, <c>workers/sessionId</c>), for a server that keeps data per caller. Taken from the turn,
    /// never from the model's arguments.</summary>
    public bool SendCaller { get; set; }

    /// <summary>A new session has this server's tools.</summary>
    public bool Default { get; set; }
}
