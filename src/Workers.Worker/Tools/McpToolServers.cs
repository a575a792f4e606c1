using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ModelContextProtocol.Client;
using Workers.Contracts;
using Workers.Core.Sessions;

namespace Workers.Worker.Tools;

/// <summary>
/// The worker's connections to the configured MCP servers: one client per server per process (a stdio server is a
/// child process, never started per turn), connected when the worker starts and again after it ends or fails. A turn
/// that needs a server still connecting waits up to <see cref="ToolOptions.ConnectTimeout"/>; one that cannot be reached
/// is left out of the turn (the model does not see its tools), and tried again after <see cref="ToolOptions.RetryAfter"/>.
/// </summary>
public sealed class McpToolServers(IOptions<ToolOptions> options, ILoggerFactory loggers) : IHostedService, IAsyncDisposable
{
    private readonly ToolOptions _options = options.Value;
    private readonly ILogger _logger = loggers.CreateLogger<McpToolServers>();
    private readonly Lock _gate = new();
    private readonly Dictionary<string, Connection> _connections = new(StringComparer.Ordinal);
    private bool _stopped;

    /// <summary>The servers a new session has.</summary>
    public IReadOnlyList<string> Defaults => [.. _options.Mcp.Where(s => s.Value.Default).Select(s => s.Key).Order(StringComparer.Ordinal)];

    /// <summary>The servers a session's turn offers: its own list, or the defaults. A name this deployment lacks refuses
    /// the turn, before anything is spent, naming the servers there are.</summary>
    public IReadOnlyList<string> Resolve(IReadOnlyList<string>? sessionTools)
    {
        var names = sessionTools ?? Defaults;
        var unknown = names.Where(n => !_options.Mcp.ContainsKey(n)).ToList();
        if (unknown.Count > 0)
        {
            var known = _options.Mcp.Count == 0 ? "none" : string.Join(", ", _options.Mcp.Keys.Order(StringComparer.Ordinal));
            throw new ChatErrorException(ErrorCodes.InvalidRequest,
                $"this deployment has no tool server called {string.Join(", ", unknown.Select(n => $"'{n}'"))} (it has: {known}); set others with 'tools'");
        }

        return names;
    }

    /// <summary>The tools of one server, or null when it cannot be reached now.</summary>
    public async Task<(IList<McpClientTool> Tools, McpServerSettings Settings)?> ToolsAsync(string name, CancellationToken cancellationToken)
    {
        var settings = _options.Mcp[name];
        var connection = Current(name);
        if (connection is null)
        {
            return null;
        }

        if (connection.AfterFailure && !connection.Ready.IsCompleted)
        {
            // Tried again after a failure: the turns that find it still connecting go on without it.
            return null;
        }

        try
        {
            var tools = await connection.Ready.WaitAsync(_options.ConnectTimeout, cancellationToken);
            return (tools, settings);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            _logger.LogWarning("Tool server {Server} not available for this turn ({Error}); its tools are left out", name, e.GetType().Name);
            return null;
        }
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Connected in the background: a slow server must not hold up the worker's start.
        foreach (var name in _options.Mcp.Keys)
        {
            Current(name);
        }

        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken) => await DisposeAsync();

    public async ValueTask DisposeAsync()
    {
        List<Connection> open;
        lock (_gate)
        {
            _stopped = true;
            open = [.. _connections.Values];
            _connections.Clear();
        }

        foreach (var connection in open)
        {
            await connection.DisposeAsync();
        }
    }

    // The server's live connection; a new one when the last ended, or failed longer than RetryAfter ago.
    private Connection? Current(string name)
    {
        Connection? stale = null;
        Connection fresh;
        lock (_gate)
        {
            if (_stopped)
            {
                return null;
            }

            if (_connections.TryGetValue(name, out var connection))
            {
                if (connection.IsUsable)
                {
                    return connection;
                }

                if (connection.FailedAt is { } failed && DateTimeOffset.UtcNow - failed < _options.RetryAfter)
                {
                    return null;
                }

                stale = connection;
            }

            fresh = new Connection(name, Task.Run(() => ConnectAsync(name))) { AfterFailure = stale?.FailedAt is not null };
            _connections[name] = fresh;
        }

        _ = fresh.Ready.ContinueWith(t => _logger.LogError("Tool server {Server} could not be connected ({Error}); turns go on " +
                "without its tools and it is tried again in {RetryAfter}", name, t.Exception?.InnerException?.GetType().Name, _options.RetryAfter),
            CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);

        if (stale is not null)
        {
            _ = stale.DisposeAsync().AsTask();
        }

        return fresh;
    }

    private async Task<(McpClient Client, IList<McpClientTool> Tools)> ConnectAsync(string name)
    {
        var settings = _options.Mcp[name];
        IClientTransport transport = settings.Command is { } command
            ? new StdioClientTransport(new StdioClientTransportOptions
            {
                Name = name,
                Command = command,
                Arguments = [.. settings.Arguments],
                WorkingDirectory = settings.WorkingDirectory,
                // Never the worker's environment: it holds the database's and the broker's credentials.
                InheritEnvironmentVariables = false,
                EnvironmentVariables = CleanEnvironment(settings),
                // Its stderr may echo what it was given (user content): never into the worker's logs.
                StandardErrorLines = _ => { },
            }, loggers)
            : new HttpClientTransport(new HttpClientTransportOptions
            {
                Name = name,
                Endpoint = new Uri(settings.Url!),
                AdditionalHeaders = settings.Headers,
                ConnectionTimeout = _options.ConnectTimeout,
            }, loggers);
        // Starting the process (or reaching the URL), the handshake and the tool list, all within the one bound.
        using var timeout = new CancellationTokenSource(_options.ConnectTimeout);
        var client = await McpClient.CreateAsync(transport, new McpClientOptions { InitializationTimeout = _options.ConnectTimeout },
            loggers, timeout.Token);
        try
        {
            var (named, dropped) = McpTool.SafeNames(name, await client.ListToolsAsync(cancellationToken: timeout.Token));
            // A schema Semantic Kernel cannot read would fail every turn offering the server: such a tool is left out here.
            var tools = named.Where(t => Registers(name, t, dropped)).ToList();
            if (dropped.Count > 0)
            {
                _logger.LogWarning("Tool server {Server}: {Count} tools left out (a name that clashes with another's once made " +
                    "safe, or a schema the kernel cannot read)",
                    name, dropped.Count);
            }

            _logger.LogInformation("Tool server {Server} connected: {Count} tools", name, tools.Count);
            return (client, tools);
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }
    }

    private static bool Registers(string server, McpClientTool tool, List<string> dropped)
    {
        try
        {
            Microsoft.SemanticKernel.KernelPluginFactory.CreateFromFunctions(server,
                [Microsoft.SemanticKernel.AIFunctionExtensions.AsKernelFunction(new McpTool(tool, TimeSpan.FromSeconds(1), null))]);
            return true;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or System.Text.Json.JsonException)
        {
            dropped.Add(tool.Name);
            return false;
        }
    }

    private static Dictionary<string, string?> CleanEnvironment(McpServerSettings settings)
    {
        var environment = StdioClientTransportOptions.GetDefaultEnvironmentVariables();
        // The .NET host of a server written in .NET needs to find its runtime; it is no secret.
        if (System.Environment.GetEnvironmentVariable("DOTNET_ROOT") is { } dotnetRoot)
        {
            environment["DOTNET_ROOT"] = dotnetRoot;
        }

        foreach (var (key, value) in settings.Environment)
        {
            environment[key] = value;
        }

        return environment;
    }

    private sealed class Connection : IAsyncDisposable
    {
        private readonly Task<(McpClient Client, IList<McpClientTool> Tools)> _connecting;

        public Connection(string name, Task<(McpClient Client, IList<McpClientTool> Tools)> connecting)
        {
            Name = name;
            _connecting = connecting;
            Ready = ListAsync();
        }

        public string Name { get; }

        public Task<IList<McpClientTool>> Ready { get; }

        public DateTimeOffset? FailedAt { get; private set; }

        /// <summary>Started because the one before it failed to connect.</summary>
        public bool AfterFailure { get; init; }

        /// <summary>Connecting, or connected and the session still open.</summary>
        public bool IsUsable => !_connecting.IsCompleted
                                || (_connecting.IsCompletedSuccessfully && !_connecting.Result.Client.Completion.IsCompleted);

        public async ValueTask DisposeAsync()
        {
            try
            {
                var (client, _) = await _connecting;
                await client.DisposeAsync();
            }
            catch (Exception)
            {
                // It never connected: nothing to close.
            }
        }

        private async Task<IList<McpClientTool>> ListAsync()
        {
            try
            {
                return (await _connecting).Tools;
            }
            catch
            {
                FailedAt = DateTimeOffset.UtcNow;
                throw;
            }
        }
    }
}
