using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace Workers.Benchmarks.Infrastructure;

/// <summary>A worker, notifier or helper as a separate OS process, started from its Release build output.</summary>
internal sealed class HostProcess : IAsyncDisposable
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

    /// <summary>Starts <c>src/{project}/bin/Release/net10.0/{project}.dll</c> with the settings as environment variables.</summary>
    public static HostProcess StartHost(string project, string id, IEnumerable<KeyValuePair<string, string>> settings) =>
        StartDll(Repo.HostDll(project), [], id, settings);

    /// <summary>This benchmark's own assembly in a helper role (a baseline consumer, a publisher).</summary>
    public static HostProcess StartSelf(string[] args, string id, IEnumerable<KeyValuePair<string, string>> settings) =>
        StartDll(typeof(HostProcess).Assembly.Location, args, id, settings);

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
        // As the tests run them: workstation GC (the hosts' project default is server GC).
        start.Environment["DOTNET_gcServer"] = "0";
        foreach (var (key, value) in settings)
        {
            start.Environment[key] = value;
        }

        return new HostProcess(id, Process.Start(start) ?? throw new InvalidOperationException($"could not start {dll}"));
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

    /// <summary>User + system CPU time of the process so far (from /proc/PID/stat).</summary>
    public TimeSpan CpuTime() => ProcCpu.Of(Pid);

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

/// <summary>CPU time of processes from /proc: utime + stime, in clock ticks of 1/100 s (USER_HZ on Linux).</summary>
internal static class ProcCpu
{
    private const double TicksPerSecond = 100;

    public static TimeSpan Of(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // The command name is in parentheses and may contain spaces: the fields follow the last ')'.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            // After the name: state(0) ppid(1) ... utime is field 14 of the line, index 11 here; stime index 12.
            var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            return TimeSpan.FromSeconds(ticks / TicksPerSecond);
        }
        catch (IOException)
        {
            return TimeSpan.Zero;
        }
    }

    /// <summary>Summed CPU time of every live process whose name is <paramref name="comm"/> (postgres, beam.smp).</summary>
    public static TimeSpan OfAll(string comm)
    {
        var total = TimeSpan.Zero;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            var name = Path.GetFileName(dir);
            if (!int.TryParse(name, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            try
            {
                if (File.ReadAllText(Path.Combine(dir, "comm")).Trim() == comm)
                {
                    total += Of(pid);
                }
            }
            catch (IOException)
            {
                // exited meanwhile
            }
            catch (UnauthorizedAccessException)
            {
                // not ours to read
            }
        }

        return total;
    }

    /// <summary>Whole-machine busy time (all CPUs) from /proc/stat.</summary>
    public static TimeSpan MachineBusy()
    {
        var cpu = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // user nice system idle iowait irq softirq steal
        long busy = 0;
        for (var i = 1; i <= 8 && i < cpu.Length; i++)
        {
            if (i is 4 or 5)
            {
                continue;
            }

            busy += long.Parse(cpu[i], CultureInfo.InvariantCulture);
        }

        return TimeSpan.FromSeconds(busy / TicksPerSecond);
    }
}

/// <summary>CPU of the parties of a run, sampled before and after.</summary>
internal sealed class CpuSample
{
    private readonly Dictionary<string, TimeSpan> _values = [];

    public static CpuSample Take(IEnumerable<(string Name, int Pid)> processes)
    {
        var sample = new CpuSample();
        foreach (var (name, pid) in processes)
        {
            sample._values[name] = sample._values.GetValueOrDefault(name) + ProcCpu.Of(pid);
        }

        sample._values["postgres (all)"] = ProcCpu.OfAll("postgres");
        sample._values["rabbitmq (beam.smp)"] = ProcCpu.OfAll("beam.smp");
        sample._values["benchmark (this process)"] = ProcCpu.Of(Environment.ProcessId);
        sample._values["machine (all CPUs busy)"] = ProcCpu.MachineBusy();
        return sample;
    }

    /// <summary>Deltas per party, plus "other" = machine busy minus every party named (other processes, the kernel).</summary>
    public IReadOnlyDictionary<string, TimeSpan> Minus(CpuSample before)
    {
        var delta = _values.ToDictionary(p => p.Key, p => p.Value - before._values.GetValueOrDefault(p.Key));
        const string machine = "machine (all CPUs busy)";
        delta["other (machine minus the above)"] = delta[machine] - delta.Where(p => p.Key != machine).Aggregate(TimeSpan.Zero, (t, p) => t + p.Value);
        return delta;
    }
}
