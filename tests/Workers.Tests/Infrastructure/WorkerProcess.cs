using System.Collections.Concurrent;
using System.Diagnostics;

namespace Workers.Tests.Infrastructure;

/// <summary>A worker as a separate OS process, the way it runs in production, with its log kept for assertions.</summary>
public sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _log = new();

    private WorkerProcess(string id, Process process)
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

    public static WorkerProcess Start(string id, IReadOnlyDictionary<string, string> settings) =>
        StartHost("Workers.Worker", id, settings.Append(new("Workers__WorkerId", id)));

    public static WorkerProcess StartHost(string project, string id, IEnumerable<KeyValuePair<string, string>> settings)
    {
        var start = new ProcessStartInfo("dotnet", [Repository.HostDll(project)])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["Logging__Console__FormatterName"] = "simple";
        start.Environment["Logging__Console__FormatterOptions__SingleLine"] = "true";
        start.Environment["DOTNET_gcServer"] = "0";
        foreach (var (key, value) in settings)
        {
            start.Environment[key] = value;
        }

        return new WorkerProcess(id, Process.Start(start) ?? throw new InvalidOperationException($"could not start {project}"));
    }

    public async Task WaitForLogAsync(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!_log.Any(l => l.Contains(text, StringComparison.Ordinal)))
        {
            if (_process.HasExited || DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{Id} did not log '{text}' (exited: {_process.HasExited}). Log:\n{string.Join('\n', _log.TakeLast(40))}");
            }

            await Task.Delay(50);
        }
    }

    /// <summary>SIGKILL: no hand-over, no cleanup, connections dropped by the kernel.</summary>
    public void Kill() => _process.Kill(entireProcessTree: true);

    /// <summary>SIGTERM, as a process supervisor stops a worker.</summary>
    public void Terminate()
    {
        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
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
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
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
