using Workers.Core.Hosting;

[assembly: AssemblyFixture(typeof(Workers.Tests.Infrastructure.ServicesFixture))]

namespace Workers.Tests.Infrastructure;

/// <summary>
/// xunit's handle on the one <see cref="Workers.Testing.Services"/> of a test run: found or started before the first
/// test, stopped (if started here) after the last. Tests make their own databases and virtual hosts on it.
/// </summary>
public sealed class ServicesFixture : IAsyncLifetime
{
    private Services? _services;

    public Services Services => _services ?? throw new InvalidOperationException("the services fixture is not initialized");

    public string Source => Services.Source;

    public async ValueTask InitializeAsync() => _services = await Services.FindOrStartAsync("t");

    public Task<TestDatabase> CreateDatabaseAsync() => Services.CreateDatabaseAsync();

    public Task<RabbitMqOptions> CreateVhostAsync() => Services.CreateVhostAsync();

    public Task DeleteVhostAsync(string vhost) => Services.DeleteVhostAsync(vhost);

    public async ValueTask DisposeAsync()
    {
        if (_services is not null)
        {
            await _services.DisposeAsync();
        }
    }
}
