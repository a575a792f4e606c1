using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Workers.Worker.Ordering;

/// <summary>
/// Per-session FIFO lanes: different sessions run concurrently (up to <see cref="WorkerOptions.MaxConcurrentTurns"/>),
/// one session strictly one request after another, in the order the requests were enqueued.
/// </summary>
public sealed class SessionLanes(IOptions<WorkerOptions> options, ILogger<SessionLanes> logger) : IDisposable
{
    private readonly Dictionary<Guid, Queue<LaneItem>> _lanes = [];
    private readonly SemaphoreSlim _turnSlots = new(options.Value.MaxConcurrentTurns);
    private readonly int _maxWaiting = options.Value.MaxWaitingPerSession;

    public void Dispose() => _turnSlots.Dispose();

    /// <summary>Sessions with a lane, and requests waiting behind each lane's head (for the metrics).</summary>
    public (int Sessions, int Waiting) Depth()
    {
        lock (_lanes)
        {
            var waiting = 0;
            foreach (var lane in _lanes.Values)
            {
                waiting += lane.Count - 1;
            }

            return (_lanes.Count, waiting);
        }
    }

    /// <returns>False when the session already has <see cref="WorkerOptions.MaxWaitingPerSession"/> requests waiting.</returns>
    public bool TryEnqueue(Guid sessionId, LaneItem item)
    {
        lock (_lanes)
        {
            if (_lanes.TryGetValue(sessionId, out var lane))
            {
                if (!LaneAdmission.Admits(lane.Count, _maxWaiting))
                {
                    return false;
                }

                lane.Enqueue(item);
                return true;
            }

            _lanes[sessionId] = new Queue<LaneItem>([item]);
        }

        _ = Task.Run(() => RunLaneAsync(sessionId));
        return true;
    }

    private async Task RunLaneAsync(Guid sessionId)
    {
        while (true)
        {
            LaneItem item;
            lock (_lanes)
            {
                item = _lanes[sessionId].Peek();
            }

            if (item.Delivery.PartitionStopping)
            {
                // Its partition is being handed over: the next owner gets it (and everything after it) from the broker.
                item.Delivery.Abandon();
            }
            else
            {
                await _turnSlots.WaitAsync();
                try
                {
                    await item.Run();
                }
                catch (Exception e)
                {
                    // The turn could neither finish nor be refused (the broker or the database went away mid-way).
                    // Running the session's next request now would overtake this one when it is redelivered.
                    logger.LogError(e, "Request of session {SessionId} could not be settled; giving partition {Partition} up",
                        sessionId, item.Delivery.Lease.Partition);
                    item.Delivery.GiveUpPartition();
                }
                finally
                {
                    _turnSlots.Release();
                }
            }

            lock (_lanes)
            {
                var lane = _lanes[sessionId];
                lane.Dequeue();
                if (lane.Count == 0)
                {
                    _lanes.Remove(sessionId);
                    return;
                }
            }
        }
    }
}
