using Workers.Core.Hosting;
using Workers.Core.Messaging;
using Workers.Notifier;

if (await HealthProbe.RunIfAskedAsync(args) is { } probe)
{
    return probe;
}

return await StartupGuard.RunAsync(async () =>
{
    // Content root next to the binaries, so appsettings.json and the chat page are found whatever the working directory.
    var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
    builder.AddNotifier();
    var app = builder.Build();
    app.MapNotifier();
    await app.CheckBrokerTopologyAsync();
    await app.RunAsync();
});

/// <summary>Entry point, visible to the tests' host.</summary>
public partial class Program;
