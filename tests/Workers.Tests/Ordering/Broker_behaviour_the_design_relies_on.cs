using System.Text;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using Workers.Core.Messaging;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Ordering;

/// <summary>
/// What RabbitMQ (3.10, as installed) does that the ordering design depends on, checked on every run, because a
/// broker upgrade can change it. See docs/adr/0002 for how the worker relies on each.
/// </summary>
public sealed class Broker_behaviour_the_design_relies_on(ServicesFixture services)
{
    private static async Task<List<int>> ReceiveAsync(IChannel channel, string queue, int count, int ackUpTo) =>
        (await ConsumeAsync(channel, queue, count, ackUpTo)).Received;

    private static async Task<(List<int> Received, string Tag)> ConsumeAsync(IChannel channel, string queue, int count, int ackUpTo)
    {
        var received = new List<int>();
        var done = new TaskCompletionSource();
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += async (_, e) =>
        {
            lock (received)
            {
                received.Add(int.Parse(Encoding.UTF8.GetString(e.Body.Span), System.Globalization.CultureInfo.InvariantCulture));
                if (received.Count == count)
                {
                    done.TrySetResult();
                }
            }

            if (int.Parse(Encoding.UTF8.GetString(e.Body.Span), System.Globalization.CultureInfo.InvariantCulture) <= ackUpTo)
            {
                await channel.BasicAckAsync(e.DeliveryTag, false);
            }
        };
        var tag = await channel.BasicConsumeAsync(queue, autoAck: false, consumer);
        await done.Task.WaitAsync(TimeSpan.FromSeconds(20));
        lock (received)
        {
            // A copy: the consumer keeps receiving while the caller looks at what came first.
            return ([.. received.Take(count)], tag);
        }
    }

    [Theory]
    [InlineData("classic", 64)]
    [InlineData("quorum", 16)]
    [InlineData("quorum", 32)]
    [InlineData("quorum", 64)]
    public async Task Unacked_messages_of_a_dead_consumer_come_back_to_the_next_one_in_publish_order(string queueType, ushort prefetch)
    {
        var vhost = await services.CreateVhostAsync();
        try
        {
            await using var connection = await BrokerConnections.ConnectAsync(vhost, "broker-behaviour", CancellationToken.None);
            await using var setup = await connection.CreateChannelAsync(new CreateChannelOptions(true, true));
            await setup.QueueDeclareAsync("q", durable: true, exclusive: false, autoDelete: false,
                new Dictionary<string, object?> { ["x-queue-type"] = queueType });
            for (var i = 1; i <= 200; i++)
            {
                await setup.BasicPublishAsync("", "q", Encoding.UTF8.GetBytes(i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            }

            // The first consumer acks the first 10 and dies holding the next `prefetch` unacked.
            var dying = await connection.CreateChannelAsync();
            await dying.BasicQosAsync(0, (ushort)(10 + prefetch), false);
            Assert.Equal(Enumerable.Range(1, 10 + prefetch), await ReceiveAsync(dying, "q", 10 + prefetch, ackUpTo: 10));
            await Task.Delay(300);
            await dying.CloseAsync();

            await using var next = await connection.CreateChannelAsync();
            await next.BasicQosAsync(0, 250, false);
            var redelivered = await ReceiveAsync(next, "q", 190, ackUpTo: 0);
            Assert.Equal(Enumerable.Range(11, 190), redelivered);
        }
        finally
        {
            await services.DeleteVhostAsync(vhost.VirtualHost);
        }
    }

    [Theory]
    [InlineData("classic", new[] { 1, 2, 3, 4, 5 })]
    [InlineData("quorum", new[] { 2, 3, 4, 5, 1 })]
    public async Task A_nack_with_requeue_puts_the_message_back_in_place_on_classic_and_at_the_back_on_quorum(string queueType, int[] expected)
    {
        // Why the worker never nack-requeues: on a quorum queue the message would overtake nothing but be overtaken.
        var vhost = await services.CreateVhostAsync();
        try
        {
            await using var connection = await BrokerConnections.ConnectAsync(vhost, "broker-behaviour", CancellationToken.None);
            await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(true, true));
            await channel.QueueDeclareAsync("q", durable: true, exclusive: false, autoDelete: false,
                new Dictionary<string, object?> { ["x-queue-type"] = queueType });
            for (var i = 1; i <= 5; i++)
            {
                await channel.BasicPublishAsync("", "q", Encoding.UTF8.GetBytes(i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            }

            var first = await channel.BasicGetAsync("q", autoAck: false);
            await channel.BasicNackAsync(first!.DeliveryTag, multiple: false, requeue: true);
            var order = new List<int>();
            while (await channel.BasicGetAsync("q", autoAck: true) is { } message)
            {
                order.Add(int.Parse(Encoding.UTF8.GetString(message.Body.Span), System.Globalization.CultureInfo.InvariantCulture));
            }

            Assert.Equal(expected, order);
        }
        finally
        {
            await services.DeleteVhostAsync(vhost.VirtualHost);
        }
    }

    [Theory]
    [InlineData("classic")]
    [InlineData("quorum")]
    public async Task With_single_active_consumer_a_second_consumer_waits_until_the_first_is_gone(string queueType)
    {
        var vhost = await services.CreateVhostAsync();
        try
        {
            await using var connection = await BrokerConnections.ConnectAsync(vhost, "broker-behaviour", CancellationToken.None);
            await using var setup = await connection.CreateChannelAsync(new CreateChannelOptions(true, true));
            await setup.QueueDeclareAsync("q", durable: true, exclusive: false, autoDelete: false,
                new Dictionary<string, object?> { ["x-queue-type"] = queueType, ["x-single-active-consumer"] = true });
            for (var i = 1; i <= 20; i++)
            {
                await setup.BasicPublishAsync("", "q", Encoding.UTF8.GetBytes(i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            }

            var active = await connection.CreateChannelAsync();
            await active.BasicQosAsync(0, 5, false);
            Assert.Equal(Enumerable.Range(1, 5), await ReceiveAsync(active, "q", 5, ackUpTo: 0));

            await using var waiting = await connection.CreateChannelAsync();
            await waiting.BasicQosAsync(0, 50, false);
            var second = ConsumeAsync(waiting, "q", 20, ackUpTo: 0);
            await Task.Delay(500);
            Assert.False(second.IsCompleted, "the waiting consumer received messages while the first was active");

            await active.CloseAsync();
            Assert.Equal(Enumerable.Range(1, 20), (await second).Received);
        }
        finally
        {
            await services.DeleteVhostAsync(vhost.VirtualHost);
        }
    }
}
