using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using RabbitMQ.Client;
using Workers.Core.Hosting;
using Workers.Core.Messaging;

namespace Workers.Worker.Ordering;

/// <summary>
/// Keeps this worker's share of the partitions. Every tick it renews its membership (<see cref="PoolMembership"/>) and
/// moves towards its quota as <see cref="PartitionPlan"/> decides: it gives up broken partitions, hands over those
/// above the quota and takes free ones below it. A lease is a session-level advisory lock on
/// a dedicated PostgreSQL connection, so the server releases it the moment a worker dies; single-active-consumer on
/// each queue is the second guard, and the lease epoch fences commits of a worker that lost its partition.
/// </summary>
public sealed class PartitionLeaseManager(
    [FromKeyedServices(PartitionLeaseManager.LeaseConnections)] NpgsqlDataSource dataSource,
    IOptions<WorkerOptions> workerOptions,
    IOptions<TopologyOptions> topologyOptions,
    IOptions<RabbitMqOptions> rabbitOptions,
    PartitionDispatcher dispatcher,
    WorkerIdentity identity,
    SessionLanes lanes,
    WorkerMetrics metrics,
    ILogger<PartitionLeaseManager> logger) : BackgroundService
{
    /// <summary>The unpooled data source of the lease connection: closing it must end the session and its locks.</summary>
    public const string LeaseConnections = "leases";

    private readonly WorkerOptions _options = workerOptions.Value;
    private readonly PoolMembership _membership = new(identity, workerOptions.Value, lanes);
    private readonly int _partitions = topologyOptions.Value.Partitions;
    private readonly Dictionary<int, PartitionConsumer> _owned = [];
    private readonly Dictionary<int, Task> _releasing = [];
    private NpgsqlConnection? _leaseConnection;
    private IConnection? _broker;

    /// <summary>Partitions this worker consumes now.</summary>
    public IReadOnlyCollection<int> Owned
    {
        get
        {
            lock (_owned)
            {
                return [.. _owned.Keys.Order()];
            }
        }
    }

    public bool Ready => _broker?.IsOpen == true && _leaseConnection?.State == System.Data.ConnectionState.Open;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        logger.LogInformation("Worker {WorkerId} joining the pool of {Partitions} partitions", identity.Id, _partitions);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await TickAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e) when (e is NpgsqlException or RabbitMQ.Client.Exceptions.BrokerUnreachableException
                or RabbitMQ.Client.Exceptions.AlreadyClosedException or RabbitMQ.Client.Exceptions.OperationInterruptedException
                or TimeoutException or System.Net.Sockets.SocketException or Workers.Core.Hosting.InvalidConfigurationException)
            {
                logger.LogError("Partition ownership lost its connection ({Error}); dropping all partitions and reconnecting",
                    e.Message);
                await DropAllAsync();
            }

            try
            {
                await Task.Delay(_options.HeartbeatInterval, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        List<PartitionConsumer> consumers;
        lock (_owned)
        {
            consumers = [.. _owned.Values];
        }

        logger.LogInformation("Worker {WorkerId} stopping: draining {Count} partitions", identity.Id, consumers.Count);
        await Task.WhenAll(consumers.Select(c => c.StopAsync(_options.DrainTimeout)));
        await Task.WhenAll(_releasing.Values);
        try
        {
            if (_leaseConnection is { State: System.Data.ConnectionState.Open })
            {
                await using (var unlock = new NpgsqlCommand("SELECT pg_advisory_unlock_all()", _leaseConnection))
                {
                    await unlock.ExecuteNonQueryAsync(CancellationToken.None);
                }

                await _membership.LeaveAsync(_leaseConnection, CancellationToken.None);
            }
        }
        catch (NpgsqlException e)
        {
            logger.LogWarning("Could not leave the pool cleanly: {Error}", e.Message);
        }

        lock (_owned)
        {
            _owned.Clear();
        }

        await DisposeConnectionsAsync();
        logger.LogInformation("Worker {WorkerId} left the pool", identity.Id);
    }

    private async Task TickAsync(CancellationToken cancellationToken)
    {
        if (!Ready)
        {
            // Either connection gone means the leases or the deliveries are gone: start over from nothing.
            if (_broker is not null || _leaseConnection is not null)
            {
                logger.LogError("Partition ownership lost its connection (broker open: {Broker}, database open: {Database}); " +
                    "dropping all partitions and reconnecting", _broker?.IsOpen == true,
                    _leaseConnection?.State == System.Data.ConnectionState.Open);
            }

            await DropAllAsync();
            _broker = await BrokerConnections.ConnectAsync(rabbitOptions.Value, $"worker {identity.Id}", cancellationToken);
            // Checked, not declared: the worker's login may not declare it (the setup step does). Missing, it throws
            // and the next tick tries again, as after any broker loss.
            await RequestTopology.CheckAsync(_broker, topologyOptions.Value, rabbitOptions.Value.VirtualHost, cancellationToken);

            // Held for the worker's life, from an unpooled source: the advisory locks live on this session and must end
            // with it, never ride back into a pool.
            _leaseConnection = await dataSource.OpenConnectionAsync(cancellationToken);
            await _membership.JoinAsync(_leaseConnection, cancellationToken);
        }

        var (rank, members) = await _membership.HeartbeatAsync(_leaseConnection!, cancellationToken);
        await FinishReleasesAsync(cancellationToken);
        PartitionChanges changes;
        lock (_owned)
        {
            changes = PartitionPlan.Decide(_partitions, members, rank, _owned.Keys,
                _owned.Where(o => o.Value.Broken).Select(o => o.Key).ToHashSet(), _releasing.Keys.ToHashSet());
        }

        foreach (var partition in changes.GiveUpNow)
        {
            logger.LogWarning("Worker {WorkerId}: partition {Partition} broke; giving it up to be taken again", identity.Id, partition);
            Release(partition, TimeSpan.Zero);
        }

        foreach (var partition in changes.HandOver)
        {
            Release(partition, _options.DrainTimeout);
        }

        var missing = changes.Missing;
        foreach (var partition in changes.Candidates)
        {
            if (missing == 0)
            {
                break;
            }

            if (await TryAcquireAsync(partition, cancellationToken))
            {
                missing--;
            }
        }
    }

    private async Task<bool> TryAcquireAsync(int partition, CancellationToken cancellationToken)
    {
        await using var tryLock = new NpgsqlCommand("SELECT pg_try_advisory_lock($1, $2)", _leaseConnection);
        tryLock.Parameters.Add(new NpgsqlParameter { Value = LeaseLocks.PartitionNamespace });
        tryLock.Parameters.Add(new NpgsqlParameter { Value = partition });
        if (!(bool)(await tryLock.ExecuteScalarAsync(cancellationToken))!)
        {
            return false;
        }

        await using var bump = new NpgsqlCommand(
            """
            INSERT INTO workers.partition_leases (partition, worker_id, epoch) VALUES ($1, $2, 1)
            ON CONFLICT (partition) DO UPDATE
                SET worker_id = EXCLUDED.worker_id, epoch = partition_leases.epoch + 1, acquired_at = now()
            RETURNING epoch
            """, _leaseConnection);
        bump.Parameters.Add(new NpgsqlParameter { Value = partition });
        bump.Parameters.Add(new NpgsqlParameter { Value = identity.Id });
        var epoch = (long)(await bump.ExecuteScalarAsync(cancellationToken))!;
        var consumer = await PartitionConsumer.StartAsync(
            _broker!, new PartitionLease(partition, epoch), _options.PrefetchPerPartition, _options.PublishTimeout, dispatcher.DispatchAsync, logger,
            cancellationToken);
        lock (_owned)
        {
            _owned[partition] = consumer;
            metrics.PartitionAcquired();
        }

        logger.LogInformation("Worker {WorkerId} owns partition {Partition} (epoch {Epoch})", identity.Id, partition, epoch);
        return true;
    }

    private void Release(int partition, TimeSpan drainTimeout)
    {
        PartitionConsumer consumer;
        lock (_owned)
        {
            consumer = _owned[partition];
            _owned.Remove(partition);
            metrics.PartitionsReleased(1);
            _releasing[partition] = consumer.StopAsync(drainTimeout);
        }

        logger.LogInformation("Worker {WorkerId} hands over partition {Partition}", identity.Id, partition);
    }

    /// <summary>Unlocks partitions whose hand-over finished; only the tick touches the lease connection.</summary>
    private async Task FinishReleasesAsync(CancellationToken cancellationToken)
    {
        foreach (var (partition, task) in _releasing.Where(r => r.Value.IsCompleted).ToList())
        {
            await using var unlock = new NpgsqlCommand("SELECT pg_advisory_unlock($1, $2)", _leaseConnection);
            unlock.Parameters.Add(new NpgsqlParameter { Value = LeaseLocks.PartitionNamespace });
            unlock.Parameters.Add(new NpgsqlParameter { Value = partition });
            await unlock.ExecuteNonQueryAsync(cancellationToken);
            lock (_owned)
            {
                _releasing.Remove(partition);
            }

            logger.LogInformation("Worker {WorkerId} released partition {Partition}", identity.Id, partition);
        }
    }

    private async Task DropAllAsync()
    {
        List<PartitionConsumer> consumers;
        lock (_owned)
        {
            consumers = [.. _owned.Values];
            _owned.Clear();
            _releasing.Clear();
            metrics.PartitionsReleased(consumers.Count);
        }

        // No drain: without the lease or the broker these turns cannot be acked; their commits are fenced by epoch.
        // Broken first, so their replies stop publishing before the channel's close hands the requests on.
        foreach (var consumer in consumers)
        {
            consumer.MarkBroken();
        }

        await Task.WhenAll(consumers.Select(c => c.StopAsync(TimeSpan.Zero)));
        await DisposeConnectionsAsync();
    }

    private async Task DisposeConnectionsAsync()
    {
        if (_leaseConnection is not null)
        {
            await _leaseConnection.DisposeAsync();
            _leaseConnection = null;
        }

        if (_broker is not null)
        {
            try
            {
                await _broker.CloseAsync();
            }
            catch (Exception e) when (e is RabbitMQ.Client.Exceptions.AlreadyClosedException or System.IO.IOException)
            {
                logger.LogDebug("Broker connection already closed");
            }

            await _broker.DisposeAsync();
            _broker = null;
        }
    }
}
