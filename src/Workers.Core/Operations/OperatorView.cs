using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Npgsql;
using RabbitMQ.Client;
using Workers.Contracts;
using Workers.Core.Hosting;
using Workers.Core.Messaging;

namespace Workers.Core.Operations;

/// <summary>
/// The operator's view of the pool and of parked requests: the CLI's (<c>Workers.Migrator pool</c>, <c>parked</c>,
/// with the admin logins) and the notifier's admin API's (as <c>workers_operator</c>, with the broker's monitoring
/// login). Parked requests are reached only through the <c>operator_*</c> functions, which never list their text.
/// </summary>
/// <param name="db">Logs in as <c>workers_operator</c> (or the admin).</param>
/// <param name="broker">The broker; its login publishes replays (the notifier's own, or the admin).</param>
/// <param name="management">A login the management API shows the virtual host's queues to (tag <c>management</c>).</param>
public sealed class OperatorView(NpgsqlDataSource db, RabbitMqOptions broker, NetworkCredential management) : IDisposable
{
    private readonly HttpClient _management = BrokerConnections.ManagementClient(broker, management);

    public sealed record Member(string WorkerId, double HeartbeatAgeSeconds, int Lanes, int Waiting, int Partitions);

    public sealed record PartitionRow(int Partition, string? Owner, long? Epoch, long Ready, long Unacked);

    public sealed record Parked(Guid SessionId, Guid RequestId, string OwnerId, string Code, string Reason, int Attempts,
        DateTimeOffset ParkedAt, int TextLength);

    public sealed record PoolState(IReadOnlyList<Member> Members, IReadOnlyList<PartitionRow> Partitions, long ErrorQueue, int Parked);

    public async Task<PoolState> PoolAsync(int partitions, CancellationToken cancellationToken)
    {
        var members = new List<Member>();
        await using (var command = db.CreateCommand(
            """
            SELECT m.worker_id, extract(epoch FROM now() - m.heartbeat_at)::float8, m.lanes, m.waiting,
                   (SELECT count(*) FROM workers.partition_leases l WHERE l.worker_id = m.worker_id)::int
            FROM workers.worker_members m ORDER BY m.worker_id
            """))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                members.Add(new Member(reader.GetString(0), reader.GetDouble(1), reader.GetInt32(2), reader.GetInt32(3), reader.GetInt32(4)));
            }
        }

        var leases = new Dictionary<int, (string Owner, long Epoch)>();
        await using (var command = db.CreateCommand("SELECT partition, worker_id, epoch FROM workers.partition_leases"))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken))
        {
            while (await reader.ReadAsync(cancellationToken))
            {
                leases[reader.GetInt32(0)] = (reader.GetString(1), reader.GetInt64(2));
            }
        }

        await using var parkedCount = db.CreateCommand("SELECT count(*)::int FROM workers.operator_parked()");
        var parked = (int)(await parkedCount.ExecuteScalarAsync(cancellationToken))!;
        var depths = await QueueDepthsAsync(cancellationToken);
        var rows = Enumerable.Range(0, partitions).Select(p =>
        {
            var (ready, unacked) = depths.GetValueOrDefault(Partitioning.QueueName(p));
            return leases.TryGetValue(p, out var lease)
                ? new PartitionRow(p, lease.Owner, lease.Epoch, ready, unacked)
                : new PartitionRow(p, null, null, ready, unacked);
        }).ToList();
        var (errorReady, errorUnacked) = depths.GetValueOrDefault(RequestTopology.ErrorQueue);
        return new PoolState(members, rows, errorReady + errorUnacked, parked);
    }

    public async Task<IReadOnlyList<Parked>> ParkedAsync(CancellationToken cancellationToken)
    {
        await using var command = db.CreateCommand(
            "SELECT session_id, request_id, owner_id, code, reason, attempts, parked_at, text_length FROM workers.operator_parked()");
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var parked = new List<Parked>();
        while (await reader.ReadAsync(cancellationToken))
        {
            parked.Add(new Parked(reader.GetGuid(0), reader.GetGuid(1), reader.GetString(2), reader.GetString(3), reader.GetString(4),
                reader.GetInt32(5), reader.GetFieldValue<DateTimeOffset>(6), reader.GetInt32(7)));
        }

        return parked;
    }

    /// <summary>
    /// Sends a parked request back to its partition, as its owner, under the same request id: its inbox row is reset
    /// first (so the worker runs it instead of calling it done), the request is published with confirms, and only then
    /// is the parked row removed. A crash in between leaves it parked, to replay again; the inbox keeps it one turn.
    /// </summary>
    public async Task<bool> ReplayAsync(Guid sessionId, Guid requestId, int partitions, CancellationToken cancellationToken)
    {
        // Also deletes its inbox row (it says 'failed'), so the worker runs it instead of calling it a duplicate.
        await using var find = db.CreateCommand("SELECT owner_id, user_text FROM workers.operator_take_parked($1, $2)");
        find.Parameters.Add(new NpgsqlParameter { Value = sessionId });
        find.Parameters.Add(new NpgsqlParameter { Value = requestId });
        string owner, text;
        await using (var reader = await find.ExecuteReaderAsync(cancellationToken))
        {
            if (!await reader.ReadAsync(cancellationToken))
            {
                return false;
            }

            (owner, text) = (reader.GetString(0), reader.GetString(1));
        }

        await using (var connection = await BrokerConnections.ConnectAsync(broker, "Workers operator: parked replay", cancellationToken))
        await using (var channel = await connection.CreateChannelAsync(
                         new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken))
        {
            var request = new ChatRequested { RequestId = requestId, SessionId = sessionId, UserId = owner, Text = text, SentAt = DateTimeOffset.UtcNow };
            // The broker checks user-id against this login, and the turn records it as its producer: a replay is audited.
            var properties = new BasicProperties
            {
                Persistent = true, ContentType = "application/json", MessageId = requestId.ToString(), UserId = broker.Username,
            };
            await channel.BasicPublishAsync(Partitioning.RequestsExchange, Partitioning.RoutingKey(sessionId, partitions), mandatory: true,
                properties, JsonSerializer.SerializeToUtf8Bytes(request, JsonSerializerOptions.Web), cancellationToken);
        }

        return await RemoveAsync(sessionId, requestId, cancellationToken);
    }

    public Task<bool> DiscardAsync(Guid sessionId, Guid requestId, CancellationToken cancellationToken) =>
        RemoveAsync(sessionId, requestId, cancellationToken);

    public void Dispose() => _management.Dispose();

    public static string Format(PoolState state)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"members ({state.Members.Count}):");
        foreach (var m in state.Members)
        {
            text.AppendLine(CultureInfo.InvariantCulture,
                $"  {m.WorkerId,-24} heartbeat {m.HeartbeatAgeSeconds,5:0.0} s ago  partitions {m.Partitions,3}  lanes {m.Lanes,4}  waiting {m.Waiting,4}");
        }

        text.AppendLine("partition  owner                     epoch    ready  unacked");
        foreach (var p in state.Partitions)
        {
            text.AppendLine(CultureInfo.InvariantCulture,
                $"  {p.Partition,7}  {p.Owner ?? "(none)",-24} {(p.Epoch is { } e ? e.ToString(CultureInfo.InvariantCulture) : "-"),6} {p.Ready,8} {p.Unacked,8}");
        }

        text.Append(CultureInfo.InvariantCulture, $"error queue: {state.ErrorQueue} messages; parked requests: {state.Parked} (Workers.Migrator parked)");
        return text.ToString();
    }

    public static string Format(IReadOnlyList<Parked> parked) => parked.Count == 0
        ? "no parked requests"
        : string.Join('\n', parked.Select(p => string.Create(CultureInfo.InvariantCulture,
            $"{p.SessionId} {p.RequestId} owner {p.OwnerId} {p.Code} ×{p.Attempts} at {p.ParkedAt:u}: {p.Reason} ({p.TextLength} characters)")));

    private async Task<Dictionary<string, (long Ready, long Unacked)>> QueueDepthsAsync(CancellationToken cancellationToken)
    {
        var queues = await _management.GetFromJsonAsync<List<JsonElement>>(
            $"queues/{Uri.EscapeDataString(broker.VirtualHost)}?columns=name,messages_ready,messages_unacknowledged", cancellationToken) ?? [];
        return queues.ToDictionary(q => q.GetProperty("name").GetString()!, q => (Count(q, "messages_ready"), Count(q, "messages_unacknowledged")));

        static long Count(JsonElement queue, string name) => queue.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt64() : 0;
    }

    private async Task<bool> RemoveAsync(Guid sessionId, Guid requestId, CancellationToken cancellationToken)
    {
        await using var command = db.CreateCommand("SELECT workers.operator_remove_parked($1, $2)");
        command.Parameters.Add(new NpgsqlParameter { Value = sessionId });
        command.Parameters.Add(new NpgsqlParameter { Value = requestId });
        return (bool)(await command.ExecuteScalarAsync(cancellationToken))!;
    }
}
