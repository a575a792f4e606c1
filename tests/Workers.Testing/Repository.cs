namespace Workers.Testing;

/// <summary>Paths in the checkout the tests or the benchmarks run from.</summary>
public static class Repository
{
    public static string Root { get; } = FindRoot();

    /// <summary>
    /// The build output of a host project, in the configuration the running program was built in: a Release test run
    /// or benchmark starts Release hosts, a Debug one Debug hosts, so one build is all it takes.
    /// </summary>
    public static string HostDll(string project) => BuildOutput("src", project);

    /// <summary>The benchmark program's build output, in the same configuration (see <see cref="HostDll"/>).</summary>
    public static string BenchmarkDll() => BuildOutput("bench", "Workers.Benchmarks");

    /// <summary>A program the tests start (under <c>tests/</c>), in the same configuration (see <see cref="HostDll"/>).</summary>
    public static string TestProgramDll(string project) => BuildOutput("tests", project);

    private static string BuildOutput(string folder, string project)
    {
        var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}",
            StringComparison.Ordinal) ? "Release" : "Debug";
        var path = Path.Combine(Root, folder, project, "bin", configuration, "net10.0", $"{project}.dll");
        return File.Exists(path) ? path : throw new FileNotFoundException($"build {project} first (dotnet build -c {configuration})", path);
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Workers.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Workers.sln not found above " + AppContext.BaseDirectory);
    }
}
