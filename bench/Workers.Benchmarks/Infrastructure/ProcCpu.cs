using System.Globalization;

namespace Workers.Benchmarks.Infrastructure;

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
