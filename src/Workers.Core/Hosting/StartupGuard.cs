using Microsoft.Extensions.Options;

namespace Workers.Core.Hosting;

/// <summary>Turns a configuration error at start into one line naming the key, instead of a stack trace.</summary>
public static class StartupGuard
{
    public static async Task<int> RunAsync(Func<Task> run)
    {
        ArgumentNullException.ThrowIfNull(run);
        try
        {
            await run();
            return 0;
        }
        catch (OptionsValidationException e)
        {
            return Fail(string.Join("; ", e.Failures));
        }
        catch (InvalidConfigurationException e)
        {
            return Fail(e.Message);
        }
        catch (InvalidOperationException e) when (e.Message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal))
        {
            return Fail(e.Message);
        }
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"configuration error: {message}");
        return 2;
    }
}
