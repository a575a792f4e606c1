using System.Net;
using System.Text.Json;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Foundation;

/// <summary>Both hosts start against the services, report readiness that really checks them, and stop cleanly.</summary>
[Collection("worker pools")]
public sealed class Hosts(ServicesFixture services)
{
    /// <summary>Ready follows start by a moment: the bus and the partition connections come up in the background.</summary>
    private static async Task WaitUntilReadyAsync(HttpClient http)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        HttpStatusCode status;
        while ((status = (await http.GetAsync("/health/ready")).StatusCode) != HttpStatusCode.OK && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
        }

        Assert.Equal(HttpStatusCode.OK, status);
    }

    [Fact]
    public async Task The_worker_is_ready_only_with_its_services_and_stops_cleanly_on_SIGTERM()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        var worker = await pool.StartWorkerAsync();
        using var http = new HttpClient { BaseAddress = await worker.WorkerAddressAsync() };
        Assert.Equal("127.0.0.1", http.BaseAddress!.Host);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health/live")).StatusCode);
        await WaitUntilReadyAsync(http);

        // Readiness says what it checked, as JSON, and which partitions this worker owns.
        await pool.WaitForBalanceAsync([worker], TimeSpan.FromSeconds(15));
        using (var ready = JsonDocument.Parse(await http.GetStringAsync("/health/ready")))
        {
            Assert.Equal("Healthy", ready.RootElement.GetProperty("status").GetString());
            var checks = ready.RootElement.GetProperty("checks").EnumerateArray().ToDictionary(c => c.GetProperty("name").GetString()!);
            Assert.Equal("Healthy", checks["postgres"].GetProperty("status").GetString());
            Assert.Equal(Enumerable.Range(0, pool.Partitions),
                checks["partitions"].GetProperty("data").GetProperty("partitions").EnumerateArray().Select(p => p.GetInt32()));
        }

        // Pull the database out from under it: readiness must say so.
        await pool.Db.ExecuteAsync($"ALTER ROLE workers_worker NOLOGIN; SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{pool.Db.Name}' AND usename = 'workers_worker'");
        try
        {
            var notReady = await http.GetAsync("/health/ready");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, notReady.StatusCode);
            using var report = JsonDocument.Parse(await notReady.Content.ReadAsStringAsync());
            Assert.Contains(report.RootElement.GetProperty("checks").EnumerateArray(),
                c => c.GetProperty("name").GetString() == "postgres" && c.GetProperty("status").GetString() == "Unhealthy");
        }
        finally
        {
            await pool.Db.ExecuteAsync("ALTER ROLE workers_worker LOGIN");
        }

        // It comes back by itself once the database does.
        await WaitUntilReadyAsync(http);
        await pool.WaitForBalanceAsync([worker], TimeSpan.FromSeconds(15));
        worker.Terminate();
        var exit = await worker.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.True(exit == 0, $"exit {exit}:\n{string.Join("\n", worker.Log.TakeLast(30))}");
        Assert.Contains(worker.Log, l => l.Contains("left the pool", StringComparison.Ordinal));
        Assert.Equal(0L, await pool.Db.ScalarAsync<long>("SELECT count(*) FROM workers.worker_members"));
    }

    [Fact]
    public async Task The_notifier_is_ready_with_its_services_and_stops_cleanly_on_SIGTERM()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        var notifier = await pool.StartNotifierAsync();
        using var http = notifier.Http();
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health/live")).StatusCode);
        await WaitUntilReadyAsync(http);
        // Its port is public: readiness names its checks, not the broker's address or queues.
        var ready = await http.GetStringAsync("/health/ready");
        Assert.Contains("\"name\":\"masstransit-bus\"", ready, StringComparison.Ordinal);
        Assert.DoesNotContain("rabbitmq://", ready, StringComparison.Ordinal);
        notifier.Process.Terminate();
        Assert.Equal(0, await notifier.Process.WaitForExitAsync(TimeSpan.FromSeconds(30)));
    }

    [Theory]
    [InlineData("Workers__Partitions", "abc", "Workers:Partitions")]
    [InlineData("Workers__Partitions", "0", "Workers:Partitions")]
    [InlineData("Workers__QueueType", "lazy", "Workers:QueueType")]
    [InlineData("ConnectionStrings__Postgres", "", "ConnectionStrings:Postgres is missing")]
    [InlineData("ConnectionStrings__Postgres", "Hots=x;Nonsense=1", "ConnectionStrings:Postgres is malformed")]
    [InlineData("RabbitMq__Port", "99999", "RabbitMq:Port")]
    [InlineData("Llm__Provider", "Magic", "Llm:Provider")]
    public async Task A_bad_setting_stops_the_worker_at_start_with_one_line_naming_the_key(string key, string value, string expected)
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        var settings = new Dictionary<string, string>(pool.Settings) { [key] = value, ["Workers__WorkerId"] = "bad" };
        await using var worker = HostProcess.StartHost("Workers.Worker", "bad", settings);
        Assert.Equal(2, await worker.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        var errors = worker.Log.Where(l => l.StartsWith("configuration error:", StringComparison.Ordinal)).ToList();
        var line = Assert.Single(errors);
        Assert.Contains(expected, line, StringComparison.Ordinal);
        Assert.DoesNotContain(worker.Log, l => l.TrimStart().StartsWith("at ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_missing_signing_key_stops_the_notifier_outside_Development()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        var settings = new Dictionary<string, string>(pool.Settings) { ["ASPNETCORE_ENVIRONMENT"] = "Production", ["Urls"] = "http://127.0.0.1:0" };
        await using var notifier = HostProcess.StartHost("Workers.Notifier", "bad-notifier", settings);
        Assert.Equal(2, await notifier.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains(notifier.Log, l => l.StartsWith("configuration error: Auth:SigningKey", StringComparison.Ordinal));
    }
}
