using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Reflection;

namespace Workers.Testing;

/// <summary>
/// A worker, notifier or helper as a separate OS process, the way it runs in production, with the settings as
/// environment variables and its log kept for assertions and diagnosis.
/// </summary>
public sealed class HostProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _log = new();

    private HostProcess(string id, Process process)
    {
        Id = id;
        _process = process;
        process.OutputDataReceived += (_, e) => Keep(e.Data);
        process.ErrorDataReceived += (_, e) => Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public string Id { get; }

    public int Pid => _process.Id;

    public bool Running => !_process.HasExited;

    public IEnumerable<string> Log => _log;

    /// <summary>Starts <c>src/{project}/bin/{configuration}/net10.0/{project}.dll</c> (<see cref="Repository.HostDll"/>).</summary>
    public static HostProcess StartHost(string project, string id, IEnumerable<KeyValuePair<string, string>> settings) =>
        StartDll(Repository.HostDll(project), [], id, settings);

    /// <summary>The benchmark program (<c>bench/Workers.Benchmarks</c>) with <paramref name="args"/>; it inherits this
    /// process's environment, so it finds the same services.</summary>
    public static HostProcess StartBenchmark(string[] args, string id) => StartDll(Repository.BenchmarkDll(), args, id, []);

    /// <summary>The running program's own assembly in a helper role (a baseline consumer, a publisher).</summary>
    public static HostProcess StartSelf(string[] args, string id, IEnumerable<KeyValuePair<string, string>> settings) =>
        StartDll((Assembly.GetEntryAssembly() ?? throw new InvalidOperationException("no entry assembly")).Location, args, id, settings);

    private static HostProcess StartDll(string dll, string[] args, string id, IEnumerable<KeyValuePair<string, string>> settings)
    {
        var start = new ProcessStartInfo("dotnet", [dll, .. args])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["Logging__Console__FormatterName"] = "simple";
        start.Environment["Logging__Console__FormatterOptions__SingleLine"] = "true";
        // Workstation GC (the hosts' project default is server GC): many processes share few cores here.
        start.Environment["DOTNET_gcServer"] = "0";
        // The admin API only where a start asks for it: the operator login that services.sh env exported names
        // another database than the test's.
        start.Environment.Remove("ConnectionStrings__PostgresOperator");
        // Nor the HA topology's, when the tests run with its env exported: each start names its own.
        start.Environment.Remove("ConnectionStrings__PostgresLeases");
        start.Environment.Remove("RabbitMq__Nodes");
        foreach (var (key, value) in settings)
        {
            start.Environment[key] = value;
        }

        return new HostProcess(id, Process.Start(start) ?? throw new InvalidOperationException($"could not start {dll}"));
    }

    /// <summary>A worker's HTTP address (health, metrics), from its "ready; health at ..." log line.</summary>
    public async Task<Uri> WorkerAddressAsync()
    {
        await WaitForLogAsync("health at http://", TimeSpan.FromSeconds(30));
        var line = Log.First(l => l.Contains("health at http://", StringComparison.Ordinal));
        return new Uri(line[line.IndexOf("http://", StringComparison.Ordinal)..].Trim());
    }

    public async Task WaitForLogAsync(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!_log.Any(l => l.Contains(text, StringComparison.Ordinal)))
        {
            if (_process.HasExited)
            {
                // Drain the redirected output before judging: the line may still be on its way.
                _process.WaitForExit();
                if (_log.Any(l => l.Contains(text, StringComparison.Ordinal)))
                {
                    return;
                }
            }

            if (_process.HasExited || DateTime.UtcNow > deadline)
            {
                throw new TimeoutException(
                    $"{Id} did not log '{text}' (exited: {_process.HasExited}). Log:\n{string.Join('\n', _log.TakeLast(40))}");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>SIGKILL: no hand-over, no cleanup, connections dropped by the kernel.</summary>
    public void Kill() => _process.Kill(entireProcessTree: true);

    /// <summary>SIGTERM, as a process supervisor stops a worker.</summary>
    public void Terminate()
    {
        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]);
        kill?.WaitForExit();
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cancel.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }
        catch (InvalidOperationException)
        {
            // already gone
        }

        _process.Dispose();
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }

        _log.Enqueue(line);
        while (_log.Count > 5000)
        {
            _log.TryDequeue(out _);
        }
    }
}
