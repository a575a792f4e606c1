using Workers.Tests.Infrastructure;

namespace Workers.Tests.Foundation;

/// <summary>
/// The benchmark's smoke mode (<c>--quick</c>) of the notifier scenarios runs and passes its own checks: no event of
/// another user, every turn completed, a stalled client closed by the notifier for falling behind. Figures are not
/// judged here (docs/benchmarks.md has them); this keeps the scenarios working.
/// </summary>
[Collection("worker pools")]
public sealed class Benchmark_smoke(ServicesFixture services)
{
    [Theory]
    [InlineData("fanout")]
    [InlineData("stalled")]
    public async Task The_quick_run_of_a_notifier_scenario_passes_its_checks(string scenario)
    {
        Assert.NotNull(services.Services);
        await using var bench = HostProcess.StartBenchmark([scenario, "--quick"], $"bench-{scenario}");
        var exit = await bench.WaitForExitAsync(TimeSpan.FromMinutes(4));
        Assert.True(exit == 0, $"bench {scenario} --quick exited {exit}:\n{string.Join('\n', bench.Log.TakeLast(30))}");
    }
}
