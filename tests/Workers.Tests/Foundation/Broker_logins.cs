using System.Net.Http.Json;
using Microsoft.Extensions.Configuration;
using System.Text;
using System.Text.Json;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;
using Workers.Contracts;
using Workers.Core.Hosting;
using Workers.Core.Messaging;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Foundation;

/// <summary>
/// Each component logs in to the broker with only what it uses (<see cref="BrokerPermissions"/>), and every request says,
/// through its broker-checked AMQP user-id, which login asserted its userId: the turn records it.
/// </summary>
[Collection("worker pools")]
public sealed class Broker_logins(ServicesFixture services)
{
    private const ushort AccessRefused = 403;

    [Fact]
    public async Task The_migrators_logins_step_gives_each_component_exactly_its_permissions_and_no_management_access()
    {
        var vhost = await services.Services.CreateVhostAsync();
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var names = new Dictionary<string, (string Login, BrokerPermissions Permissions)>
        {
            ["Worker"] = ($"t-worker-{suffix}", BrokerPermissions.Worker),
            ["Notifier"] = ($"t-notifier-{suffix}", BrokerPermissions.Notifier),
            ["Producer"] = ($"t-producer-{suffix}", BrokerPermissions.Producer),
            ["Monitor"] = ($"t-monitor-{suffix}", BrokerPermissions.Monitor),
        };
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(names.SelectMany(n => new[]
        {
            KeyValuePair.Create<string, string?>($"BrokerLogins:{n.Key}:Username", n.Value.Login),
            KeyValuePair.Create<string, string?>($"BrokerLogins:{n.Key}:Password", $"pw-{n.Value.Login}"),
        })).Build();
        try
        {
            // Twice: the step is idempotent.
            await Workers.Migrator.BrokerLoginSetup.ApplyAsync(configuration, vhost, CancellationToken.None);
            var created = await Workers.Migrator.BrokerLoginSetup.ApplyAsync(configuration, vhost, CancellationToken.None);
            Assert.Equal(names.Values.Select(n => n.Login), created);
            foreach (var (login, permissions) in names.Values)
            {
                var granted = await services.Services.Management.GetFromJsonAsync<JsonElement>(
                    $"permissions/{Uri.EscapeDataString(vhost.VirtualHost)}/{login}");
                Assert.Equal((permissions.Configure, permissions.Write, permissions.Read), (granted.GetProperty("configure").GetString(),
                    granted.GetProperty("write").GetString(), granted.GetProperty("read").GetString()));
                var user = await services.Services.Management.GetFromJsonAsync<JsonElement>($"users/{login}");
                // Only the monitor may use the management API (to read queue depths), with the plain management tag.
                Assert.Equal(login == names["Monitor"].Login ? ["management"] : [],
                    user.GetProperty("tags").EnumerateArray().Select(t => t.GetString()).ToArray());
            }

            // The producer login it made can publish a request and nothing more.
            var producer = new RabbitMqOptions
            {
                Host = vhost.Host, Port = vhost.Port, VirtualHost = vhost.VirtualHost, Username = names["Producer"].Login,
                Password = $"pw-{names["Producer"].Login}",
            };
            await using var connection = await ConnectAsync(producer);
            await using var channel = await connection.CreateChannelAsync();
            var refused = await Assert.ThrowsAsync<OperationInterruptedException>(() =>
                channel.QueueDeclareAsync("spy", durable: false, exclusive: false, autoDelete: true));
            Assert.Equal(AccessRefused, refused.ShutdownReason?.ReplyCode);
        }
        finally
        {
            foreach (var (login, _) in names.Values)
            {
                await services.Services.Management.DeleteAsync($"users/{login}");
            }

            await services.Services.DeleteVhostAsync(vhost.VirtualHost);
        }
    }

    [Fact]
    public async Task The_producer_login_may_not_declare_a_queue()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services, recordEvents: false);
        await using var producer = await ConnectAsync(services.Services.Producer.On(pool.Broker.Options));
        await using var channel = await producer.CreateChannelAsync();
        var refused = await Assert.ThrowsAsync<OperationInterruptedException>(() =>
            channel.QueueDeclareAsync("spy", durable: false, exclusive: false, autoDelete: true));
        Assert.Equal(AccessRefused, refused.ShutdownReason?.ReplyCode);
    }

    [Fact]
    public async Task The_producer_login_may_not_bind_a_queue_to_the_events_exchange()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services, recordEvents: false);
        // Even a queue that exists (declared by the admin) cannot be bound to the events by the producer.
        await using (var admin = await pool.Broker.Connection.CreateChannelAsync())
        {
            await admin.QueueDeclareAsync("spy", durable: false, exclusive: false, autoDelete: false);
        }

        await using var producer = await ConnectAsync(services.Services.Producer.On(pool.Broker.Options));
        await using var channel = await producer.CreateChannelAsync();
        var refused = await Assert.ThrowsAsync<OperationInterruptedException>(() =>
            channel.QueueBindAsync("spy", Partitioning.EventsExchange, ""));
        Assert.Equal(AccessRefused, refused.ShutdownReason?.ReplyCode);
    }

    [Theory]
    [InlineData("producer")]
    [InlineData("notifier")]
    public async Task Only_workers_may_consume_a_partition_queue(string component)
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services, recordEvents: false);
        var login = component == "producer" ? services.Services.Producer : services.Services.Notifier;
        await using var connection = await ConnectAsync(login.On(pool.Broker.Options));
        await using var channel = await connection.CreateChannelAsync();
        var refused = await Assert.ThrowsAsync<OperationInterruptedException>(() =>
            channel.BasicConsumeAsync(Partitioning.QueueName(0), autoAck: false, new AsyncEventingBasicConsumer(channel)));
        Assert.Equal(AccessRefused, refused.ShutdownReason?.ReplyCode);
    }

    [Theory]
    [InlineData(Partitioning.EventsExchange)]
    [InlineData(Partitioning.SessionEventsExchange)]
    public async Task Only_the_notifier_and_the_admin_may_read_the_events_exchange(string exchange)
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services, recordEvents: false);
        await using var worker = await ConnectAsync(services.Services.Worker.On(pool.Broker.Options));
        await using var channel = await worker.CreateChannelAsync();
        // A queue the worker may have (its own control queue's name), bound to the events: refused for want of read.
        var own = $"{BrokerPermissions.WorkerControlPrefix}spy";
        await channel.QueueDeclareAsync(own, durable: false, exclusive: true, autoDelete: true);
        var refused = await Assert.ThrowsAsync<OperationInterruptedException>(() =>
            channel.QueueBindAsync(own, exchange, ""));
        Assert.Equal(AccessRefused, refused.ShutdownReason?.ReplyCode);
    }

    [Fact]
    public async Task A_request_from_the_producer_login_is_answered_and_its_turn_records_that_login()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        await pool.StartWorkerAsync();
        var producer = services.Services.Producer;
        await using var connection = await ConnectAsync(producer.On(pool.Broker.Options));
        await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(true, true));
        var request = Broker.Request(Guid.NewGuid(), "alice", "msg 1 from the producer");
        var (exchange, key) = pool.Broker.Partitioned(request);
        await channel.BasicPublishAsync(exchange, key, mandatory: false,
            new BasicProperties { ContentType = "application/json", Persistent = true, UserId = producer.Username },
            JsonSerializer.SerializeToUtf8Bytes(request, JsonSerializerOptions.Web));

        await pool.Events.WaitForAsync(e => e.Any(x => x.RequestId == request.RequestId && x.Type == "TurnCompleted"),
            TimeSpan.FromSeconds(30), "the reply to the producer's request");
        Assert.Equal($"alice|{producer.Username}", await pool.Db.ScalarAsync<string>(
            $"SELECT owner_id || '|' || producer FROM workers.turns WHERE request_id = '{request.RequestId}'"));
    }

    [Fact]
    public async Task A_user_id_other_than_the_login_is_refused_by_the_broker()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services, recordEvents: false);
        await using var connection = await ConnectAsync(services.Services.Producer.On(pool.Broker.Options));
        await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(true, true));
        var request = Broker.Request(Guid.NewGuid(), "alice", "msg 1");
        var (exchange, key) = pool.Broker.Partitioned(request);
        var refused = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await channel.BasicPublishAsync(exchange, key, mandatory: false,
                new BasicProperties { ContentType = "application/json", UserId = "workers-notifier" },
                JsonSerializer.SerializeToUtf8Bytes(request, JsonSerializerOptions.Web));
            // The broker closes the channel (PRECONDITION_FAILED) after the publish: the next call sees it.
            await channel.QueueDeclarePassiveAsync(Partitioning.QueueName(0));
        });
        Assert.Contains("user_id property set to 'workers-notifier' but authenticated user was", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_request_without_user_id_is_refused_invalid_request_and_dead_lettered()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services);
        await pool.StartWorkerAsync();
        var session = Guid.NewGuid();
        var anonymous = Broker.Request(session, "alice", "msg 1 without user-id");
        var (exchange, key) = pool.Broker.Partitioned(anonymous);
        await using (var channel = await pool.Broker.Connection.CreateChannelAsync(new CreateChannelOptions(true, true)))
        {
            await channel.BasicPublishAsync(exchange, key, mandatory: false,
                new BasicProperties { ContentType = "application/json", Persistent = true },
                JsonSerializer.SerializeToUtf8Bytes(anonymous, JsonSerializerOptions.Web));
        }

        var next = Broker.Request(session, "alice", "msg 2");
        await pool.Broker.PublishAsync(next);

        await pool.Events.WaitForAsync(e => e.Any(x => x.RequestId == next.RequestId && x.Type == "TurnCompleted"),
            TimeSpan.FromSeconds(30), "the session's next request");
        var failed = Assert.Single(pool.Events.OfType("TurnFailed"), e => e.RequestId == anonymous.RequestId);
        Assert.Equal(ErrorCodes.InvalidRequest, failed.Code);
        Assert.Equal(0L, await pool.Db.ScalarAsync<long>($"SELECT count(*) FROM workers.turns WHERE request_id = '{anonymous.RequestId}'"));
        var error = await pool.Broker.GetAsync(RequestTopology.ErrorQueue);
        Assert.NotNull(error);
        Assert.Equal(ErrorCodes.InvalidRequest, Encoding.UTF8.GetString((byte[])error.BasicProperties.Headers!["MT-Fault-Code"]!));
    }

    [Fact]
    public async Task A_worker_without_the_topology_stops_at_start_with_one_line_naming_the_setup_step()
    {
        await using var pool = await WorkersSystem.CreateAsync(services.Services, recordEvents: false);
        await using (var admin = await pool.Broker.Connection.CreateChannelAsync())
        {
            await admin.QueueDeleteAsync(Partitioning.QueueName(3));
        }

        var settings = new Dictionary<string, string>(pool.Settings) { ["Workers__WorkerId"] = "no-topology" };
        foreach (var (key, value) in services.Services.Worker.Settings())
        {
            settings[key] = value;
        }

        await using var worker = HostProcess.StartHost("Workers.Worker", "no-topology", settings);
        Assert.Equal(2, await worker.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        var line = Assert.Single(worker.Log, l => l.StartsWith("configuration error:", StringComparison.Ordinal));
        Assert.Contains($"queue '{Partitioning.QueueName(3)}' not found", line, StringComparison.Ordinal);
        Assert.Contains("Workers.Migrator topology", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_monitor_login_sees_queue_depths_in_the_management_API_and_can_read_no_message()
    {
        var vhost = await services.Services.CreateVhostAsync();
        try
        {
            var monitor = services.Services.Monitor;
            var queue = $"spy-{Guid.NewGuid():N}";
            await using (var admin = await ConnectAsync(vhost))
            await using (var channel = await admin.CreateChannelAsync())
            {
                await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false);
                await channel.BasicPublishAsync("", queue, Encoding.UTF8.GetBytes("a user's words"));
            }

            using var http = new HttpClient { BaseAddress = services.Services.Management.BaseAddress };
            http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Basic",
                Convert.ToBase64String(Encoding.UTF8.GetBytes($"{monitor.Username}:{monitor.Password}")));
            var vhostPath = Uri.EscapeDataString(vhost.VirtualHost);
            var listed = await http.GetFromJsonAsync<JsonElement>($"queues/{vhostPath}?columns=name,messages_ready");
            Assert.Contains(listed.EnumerateArray(), q => q.GetProperty("name").GetString() == queue);

            var peek = await http.PostAsJsonAsync($"queues/{vhostPath}/{queue}/get",
                new { count = 1, ackmode = "ack_requeue_true", encoding = "auto" });
            Assert.False(peek.IsSuccessStatusCode, $"the management API let the monitor read a message: {(int)peek.StatusCode}");
            Assert.DoesNotContain("a user's words", await peek.Content.ReadAsStringAsync(), StringComparison.Ordinal);

            await using var connection = await ConnectAsync(monitor.On(vhost));
            await using var amqp = await connection.CreateChannelAsync();
            var refused = await Assert.ThrowsAsync<OperationInterruptedException>(() => amqp.BasicGetAsync(queue, autoAck: false));
            Assert.Equal(AccessRefused, refused.ShutdownReason?.ReplyCode);
        }
        finally
        {
            await services.Services.DeleteVhostAsync(vhost.VirtualHost);
        }
    }

    private static async Task<IConnection> ConnectAsync(RabbitMqOptions options) =>
        await BrokerConnections.ConnectAsync(options, "Broker_logins", CancellationToken.None);
}
