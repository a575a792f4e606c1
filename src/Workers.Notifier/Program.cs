using Workers.Core.Hosting;
using Workers.Notifier;

return await StartupGuard.RunAsync(async () =>
{
    var builder = WebApplication.CreateBuilder(args);
    builder.AddNotifier();
    var app = builder.Build();
    app.MapNotifier();
    await app.RunAsync();
});

/// <summary>Entry point, visible to the tests' host.</summary>
public partial class Program;
