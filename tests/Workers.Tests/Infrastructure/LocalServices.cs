using System.Diagnostics;

namespace Workers.Tests.Infrastructure;

/// <summary>Runs <c>compose/local/services.sh up</c> and reads the settings it prints.</summary>
public static class LocalServices
{
    public static async Task<IReadOnlyDictionary<string, string>> UpAsync()
    {
        var script = Path.Combine(Repository.Root, "compose", "local", "services.sh");
        var start = new ProcessStartInfo("bash", [script, "up"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start bash");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{script} up failed ({process.ExitCode}): {await errors}");
        }

        return Parse(await output);
    }

    /// <summary>Reads <c>KEY=VALUE</c> and <c>KEY='VALUE'</c> lines.</summary>
    public static Dictionary<string, string> Parse(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.StartsWith("export ", StringComparison.Ordinal) ? line[7..] : line)
            .Where(line => line.Contains('=', StringComparison.Ordinal) && !line.StartsWith('#'))
            .Select(line => (Key: line[..line.IndexOf('=', StringComparison.Ordinal)], Value: line[(line.IndexOf('=', StringComparison.Ordinal) + 1)..].Trim('\'', '"')))
            .ToDictionary(p => p.Key, p => p.Value);
}
