using System.Globalization;
using System.Text;
using Workers.Benchmarks.Infrastructure;
using Workers.Benchmarks.Scenarios;

namespace Workers.Benchmarks;

/// <summary>
/// <c>dotnet run -c Release --project bench/Workers.Benchmarks -- SCENARIO [--quick] [--out FILE] [--name value ...]</c>
/// with SCENARIO one of history, pool, turn-cost, fanout, stalled, all (and cleanup: drop databases and vhosts named bench*).
/// </summary>
public static class BenchProgram
{
    private static readonly string[] Scenarios = ["history", "pool", "turn-cost", "fanout", "stalled"];

    public static async Task<int> Main(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
        if (args.Length > 0 && args[0] == "_baseline-consumer")
        {
            return await BaselineConsumer.RunAsync(args);
        }

        if (args.Length > 0 && args[0] == "_publish")
        {
            return await TurnCost.PublishHelperAsync(args);
        }

        if (args.Length == 0 || args[0] is "-h" or "--help" || !(Scenarios.Contains(args[0]) || args[0] is "all" or "cleanup"))
        {
            Console.WriteLine("usage: dotnet run -c Release --project bench/Workers.Benchmarks -- <history|pool|turn-cost|fanout|stalled|all|cleanup> " +
                              "[--quick] [--out FILE.md] [--option value ...]");
            Console.WriteLine("  history:   --turns-per-user 100 --users 10000 --iterations 2000 --context-iterations 5000");
            Console.WriteLine("  pool:      --workers 3 --partitions 16 --sessions 1000 --requests 10 --rounds 2 --tokens 6 --prefetch 64 --concurrency 64 --queue-type quorum");
            Console.WriteLine("             --warmup 2000 (requests on other sessions first) --rate 0 (0 = all at once; N = open loop at N requests/s) --timeout 120");
            Console.WriteLine("  turn-cost: --turns 5000 --requests 10 --partitions 16 --tokens 6 --warmup 1000");
            Console.WriteLine("  fanout:    --clients 1000 --workers 2 --notifiers 1 --tokens 200 --token-delay 00:00:00.010 --delta-interval 00:00:00.040 --rounds 2 --connect-batch 50 --batch-deltas false --rate 0 (turns started per second; 0 = all at once)");
            Console.WriteLine("  stalled:   --clients 8 --phase 00:00:20 --history-turns 500 --reply-chars 12000 --queue-bytes 16384");
            return args.Length == 0 ? 2 : 0;
        }

        var options = Options.Parse(args[1..]);
        Out.Line($"machine: {Environment.ProcessorCount} CPUs, {Environment.OSVersion}, .NET {Environment.Version}; " +
                 $"build {(IsRelease() ? "Release" : "Debug (numbers not representative)")}");
        // Names bench_… / bench-… (see cleanup); the seeding of `history` runs for minutes in one statement.
        await using var services = await Services.FindOrStartAsync("bench", adminCommandTimeoutSeconds: 600);
        Out.Line($"services from {services.Source}: PostgreSQL {services.PostgresAdmin.Host}:{services.PostgresAdmin.Port}, " +
                 $"RabbitMQ {services.Rabbit.Host}:{services.Rabbit.Port}");
        if (args[0] == "cleanup")
        {
            var (databases, vhosts) = await services.RemoveLeftoversAsync();
            Out.Line($"cleanup: dropped {databases} bench_* databases and {vhosts} bench-* vhosts");
            return 0;
        }

        var results = new List<ScenarioResult>();
        foreach (var scenario in args[0] == "all" ? Scenarios : [args[0]])
        {
            Out.Line($"=== {scenario}{(options.Quick ? " (quick)" : "")} === load average {File.ReadAllText("/proc/loadavg").Trim()}");
            var result = scenario switch
            {
                "history" => await History.RunAsync(services, options),
                "pool" => await Pool.RunAsync(services, options),
                "turn-cost" => await TurnCost.RunAsync(services, options),
                "fanout" => await Fanout.RunAsync(services, options),
                _ => await Stalled.RunAsync(services, options),
            };
            results.Add(result);
            Console.WriteLine();
            Console.WriteLine(result);
        }

        if (options.Get("out") is { } file)
        {
            var text = new StringBuilder();
            text.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"<!-- {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC: bench {string.Join(' ', args)} -->"));
            foreach (var result in results)
            {
                text.AppendLine(result.ToString());
            }

            await File.WriteAllTextAsync(file, text.ToString());
            Out.Line($"tables written to {file}");
        }

        return results.Any(r => r.Failed) ? 1 : 0;
    }

    private static bool IsRelease() =>
        typeof(BenchProgram).Assembly.Location.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal);
}

/// <summary><c>--name value</c> pairs and the <c>--quick</c> flag.</summary>
internal sealed class Options
{
    private readonly Dictionary<string, string> _values = [];

    public bool Quick { get; private set; }

    public static Options Parse(string[] args)
    {
        var options = new Options();
        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i].TrimStart('-');
            if (name == "quick")
            {
                options.Quick = true;
            }
            else if (i + 1 < args.Length)
            {
                options._values[name] = args[++i];
            }
            else
            {
                throw new ArgumentException($"option {args[i]} needs a value");
            }
        }

        return options;
    }

    public string? Get(string name) => _values.TryGetValue(name, out var v) ? v : null;

    public int Int(string name, int fallback) => Get(name) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;

    public string String(string name, string fallback) => Get(name) ?? fallback;

    public TimeSpan Time(string name, TimeSpan fallback) => Get(name) is { } v ? TimeSpan.Parse(v, CultureInfo.InvariantCulture) : fallback;
}
