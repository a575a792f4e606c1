using System.Diagnostics;

namespace Workers.Tests.Infrastructure;

/// <summary>Runs a program that is not .NET (node, a shell script) to its end: exit code and everything it printed.</summary>
public static class ExternalProgram
{
    public static async Task<(int Exit, string Output)> RunAsync(string file, string[] args, string directory,
        Dictionary<string, string> environment, TimeSpan? timeout = null)
    {
        var start = new ProcessStartInfo(file, args) { WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} still running after {timeout}: {await output}{await errors}");
        }

        return (process.ExitCode, await output + await errors);
    }
}
