using System.Globalization;
using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.SemanticKernel.ChatCompletion;
using Npgsql;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using Workers.Contracts;
using Workers.Core.Hosting;
using Workers.Core.Messaging;
using Workers.Core.Sessions;
using Workers.Worker.Memory;
using Workers.Worker.Model;
using Workers.Worker.Turns;

namespace Workers.Benchmarks.Scenarios;

/// <summary>
/// The baseline of <c>pool</c>: plain competing consumers on ONE durable queue, run as its own process
/// (<c>_baseline-consumer QUEUE PREFETCH CONCURRENCY</c>, settings from the environment like a worker's).
/// Per message it does the worker's database and bus work without the ordering machinery:
/// parse (the worker's own <see cref="RequestParser"/>); transaction 1 through the real <see cref="SessionStore"/>
/// (set_config as workers_app, create the session if new, read its last 100 turns); the offline model with the same
/// options; publish TurnStarted (durable), one ReplyDelta (transient), TurnCompleted (durable) through MassTransit like
/// the worker; transaction 2 through <see cref="SessionStore"/> (bump the session's turn counter and insert the turn in
/// one statement); ack. It does NOT: hold partition leases, use lanes (two requests of a session run at once), check
/// a fencing epoch, write or read the inbox (no idempotency), reserve event numbers, or create a Semantic Kernel
/// kernel with the notes plugin per turn.
/// </summary>
internal static class BaselineConsumer
{
    public const string ReadyText = "baseline consumer ready";

    public static async Task<int> RunAsync(string[] args)
    {
        var queue = args[1];
        var prefetch = ushort.Parse(args[2], CultureInfo.InvariantCulture);
        var concurrency = ushort.Parse(args[3], CultureInfo.InvariantCulture);
        var builder = Host.CreateApplicationBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddOptions<RabbitMqOptions>().BindConfiguration(RabbitMqOptions.SectionName);
        builder.Services.AddOptions<TopologyOptions>().BindConfiguration(TopologyOptions.SectionName);
        builder.Services.AddOptions<ModelOptions>().BindConfiguration(ModelOptions.SectionName);
        // The worker's data source settings (CoreRegistration), so both sides of the comparison pay the same per statement.
        var postgres = new NpgsqlConnectionStringBuilder(builder.Configuration.GetConnectionString("Postgres"))
        {
            ApplicationName = "baseline", NoResetOnClose = true, MaxAutoPrepare = 64,
        };
        builder.Services.AddSingleton(_ => NpgsqlDataSource.Create(postgres));
        builder.Services.AddSingleton<SessionStore>();
        builder.Services.AddSingleton<IChatCompletionService, OfflineChatModel>();
        builder.Services.AddMassTransit(x => x.UsingRabbitMq((context, cfg) => cfg.UseWorkersBroker(context)));
        using var host = builder.Build();
        await host.StartAsync();

        var rabbit = host.Services.GetRequiredService<IOptions<RabbitMqOptions>>().Value;
        var work = new Work(host.Services.GetRequiredService<SessionStore>(), host.Services.GetRequiredService<IBus>(),
            host.Services.GetRequiredService<IChatCompletionService>(), host.Services.GetRequiredService<IOptions<ModelOptions>>().Value);
        await using var connection = await BrokerConnections.ConnectAsync(rabbit, "baseline", CancellationToken.None);
        await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(
            publisherConfirmationsEnabled: false, publisherConfirmationTrackingEnabled: false, consumerDispatchConcurrency: concurrency));
        await channel.BasicQosAsync(0, prefetch, global: false);
        var consumer = new AsyncEventingBasicConsumer(channel);
        var failures = 0;
        consumer.ReceivedAsync += async (_, e) =>
        {
            try
            {
                await work.HandleAsync(e.Body);
            }
            catch (Exception ex)
            {
                // Any failure, not a chosen few: an exception left to the client library left its message unacked
                // and its turn missing, and the benchmark waited for it until its timeout. Tried once more, then dropped.
                if (Interlocked.Increment(ref failures) <= 5)
                {
                    Console.Error.WriteLine($"baseline: message failed{(e.Redelivered ? " again, dropped" : ", requeued")}: {ex.GetType().Name}: {ex.Message}");
                }

                if (!e.Redelivered)
                {
                    await channel.BasicNackAsync(e.DeliveryTag, multiple: false, requeue: true);
                    return;
                }
            }

            await channel.BasicAckAsync(e.DeliveryTag, multiple: false);
        };
        await channel.BasicConsumeAsync(queue, autoAck: false, consumer);
        Console.WriteLine($"{ReadyText}: queue {queue}, prefetch {prefetch}, concurrency {concurrency}");
        // Runs until the benchmark kills it.
        await Task.Delay(Timeout.Infinite, host.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping);
        return 0;
    }

    private sealed class Work(SessionStore store, IBus bus, IChatCompletionService model, ModelOptions options)
    {
        // The same token counting and history planning as the worker's turns (the benchmark's turns never fold).
        private readonly ConversationMemory memory = new(model, Microsoft.Extensions.Options.Options.Create(options));

        public async Task HandleAsync(ReadOnlyMemory<byte> body)
        {
            var request = RequestParser.Parse(body.Span).Request ?? throw new InvalidOperationException("malformed request");
            var history = new List<HistoryTurn>();
            await using (var scope = await store.BeginAsync(request.UserId, request.SessionId, CancellationToken.None))
            {
                await using var batch = scope.Batch();
                batch.Add("INSERT INTO workers.sessions (id, owner_id) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                    request.SessionId, request.UserId);
                batch.Add("SELECT turn_no, user_text, reply_text, tokens FROM workers.turns WHERE session_id = $1 AND status <> 'failed' ORDER BY turn_no DESC LIMIT 200",
                    request.SessionId);
                await using (var reader = await batch.ExecuteReaderAsync())
                {
                    // Npgsql skips the INSERT, which returns no rows: the reader starts on the SELECT.
                    while (await reader.ReadAsync())
                    {
                        history.Add(new HistoryTurn(reader.GetInt64(0), reader.GetString(1), reader.GetString(2),
                            reader.IsDBNull(3) ? null : reader.GetInt32(3)));
                    }
                }

                await scope.CommitAsync(CancellationToken.None);
            }

            history.Reverse();
            var startedAt = DateTimeOffset.UtcNow;
            await bus.Publish(new TurnStarted { SessionId = request.SessionId, RequestId = request.RequestId, UserId = request.UserId, Seq = 1 });
            var text = new System.Text.StringBuilder();
            int prompt = 0, completion = 0;
            await foreach (var chunk in model.GetStreamingChatMessageContentsAsync(
                memory.Build(memory.Plan(history, null, request.Text).Keep, null, request.Text)))
            {
                text.Append(chunk.Content);
                if (chunk.Metadata is { } m && m.TryGetValue("PromptTokens", out var p) && p is int pt
                    && m.TryGetValue("CompletionTokens", out var c) && c is int ct)
                {
                    (prompt, completion) = (pt, ct);
                }
            }

            var reply = text.ToString();
            await bus.Publish(new ReplyDelta { SessionId = request.SessionId, RequestId = request.RequestId, UserId = request.UserId, Seq = 2, Text = reply },
                x => x.Durable = false);
            await using (var scope = await store.BeginAsync(request.UserId, request.SessionId, CancellationToken.None))
            {
                await using var insert = scope.Batch();
                insert.Add(
                    """
                    WITH s AS (UPDATE workers.sessions SET turn_seq = turn_seq + 1, event_seq = event_seq + 3, last_active_at = now()
                               WHERE id = $1 RETURNING turn_seq)
                    INSERT INTO workers.turns (session_id, turn_no, owner_id, request_id, user_text, reply_text, status,
                        prompt_tokens, completion_tokens, first_seq, last_seq, started_at, tokens)
                    SELECT $1, s.turn_seq, $2, $3, $4, $5, 'complete', $6, $7, 1, 3, $8, $9 FROM s
                    """, request.SessionId, request.UserId, request.RequestId, request.Text, reply, prompt, completion, startedAt,
                    memory.CountTurn(request.Text, reply));
                await insert.ExecuteNonQueryAsync();
                await scope.CommitAsync(CancellationToken.None);
            }

            await bus.Publish(new TurnCompleted
            {
                SessionId = request.SessionId,
                RequestId = request.RequestId,
                UserId = request.UserId,
                Seq = 3,
                Text = reply,
                PromptTokens = prompt,
                CompletionTokens = completion,
                FirstTokenMs = 0,
                TotalMs = 0,
            });
        }
    }
}
