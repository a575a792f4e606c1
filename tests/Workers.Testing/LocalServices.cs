using System.Diagnostics;

namespace Workers.Testing;

/// <summary>
/// The repository's <c>compose/local/services.sh</c>: PostgreSQL and RabbitMQ as local processes, for machines without
/// a Docker engine. Its ports come from <c>WORKERS_*_PORT</c> in the environment, so two checkouts can run side by side.
/// </summary>
public static class LocalServices
{
    public static string Script { get; } = Path.Combine(Repository.Root, "compose", "local", "services.sh");

    /// <summary>Runs the script with a command (<c>up</c>, <c>status</c>, <c>fault pg-primary</c> ...) and extra environment.</summary>
    public static async Task<(int Exit, string Output, string Errors)> RunAsync(string command,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo("bash", [Script, .. command.Split(' ', StringSplitOptions.RemoveEmptyEntries)]) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start bash");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await output, await errors);
    }

    /// <summary>Whether both services of this checkout run already (then whoever started them stops them).</summary>
    public static async Task<bool> RunningAsync() => (await RunAsync("status")).Exit == 0;

    /// <summary>Starts what is not running yet, waits until both answer, and returns the settings the script prints.</summary>
    public static async Task<IReadOnlyDictionary<string, string>> UpAsync()
    {
        var (exit, output, errors) = await RunAsync("up");
        return exit == 0 ? Parse(output) : throw new InvalidOperationException($"{Script} up failed ({exit}): {errors}");
    }

    public static async Task DownAsync()
    {
        var (exit, _, errors) = await RunAsync("down");
        if (exit != 0)
        {
            throw new InvalidOperationException($"{Script} down failed ({exit}): {errors}");
        }
    }

    /// <summary>Reads <c>KEY=VALUE</c> and <c>KEY='VALUE'</c> lines.</summary>
    public static Dictionary<string, string> Parse(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.StartsWith("export ", StringComparison.Ordinal) ? line[7..] : line)
            .Where(line => line.Contains('=', StringComparison.Ordinal) && !line.StartsWith('#'))
            .Select(line => (Key: line[..line.IndexOf('=', StringComparison.Ordinal)],
                Value: line[(line.IndexOf('=', StringComparison.Ordinal) + 1)..].Trim('\'', '"')))
            .ToDictionary(p => p.Key, p => p.Value);
}
