namespace Workers.Benchmarks.Infrastructure;

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
