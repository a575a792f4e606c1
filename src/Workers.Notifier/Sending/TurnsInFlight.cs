using System.Collections.Concurrent;
using Workers.Notifier.Chat;

namespace Workers.Notifier.Sending;

/// <summary>
/// Turns of each user that were sent and have not ended. Every notifier sees every reply event, so it counts turns
/// sent through other instances too (from their <c>TurnStarted</c>); its own sends count from the moment they leave.
/// </summary>
public sealed class TurnsInFlight
{
    // A turn whose end was never seen (a lost event, a parked request) stops counting after this.
    private static readonly TimeSpan Forget = TimeSpan.FromMinutes(10);
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<Guid, DateTime>> _byUser = new();

    public int Count(string userId)
    {
        if (!_byUser.TryGetValue(userId, out var turns))
        {
            return 0;
        }

        var now = DateTime.UtcNow;
        foreach (var stale in turns.Where(t => now - t.Value > Forget))
        {
            turns.TryRemove(stale.Key, out _);
        }

        return turns.Count;
    }

    public void Sent(string userId, Guid requestId) => _byUser.GetOrAdd(userId, _ => new())[requestId] = DateTime.UtcNow;

    public void Ended(string userId, Guid requestId)
    {
        if (_byUser.TryGetValue(userId, out var turns))
        {
            turns.TryRemove(requestId, out _);
        }
    }

    public void Observe(ClientEvent clientEvent)
    {
        ArgumentNullException.ThrowIfNull(clientEvent);
        if (clientEvent.Type == nameof(Workers.Contracts.TurnStarted))
        {
            _byUser.GetOrAdd(clientEvent.UserId, _ => new()).TryAdd(clientEvent.RequestId, DateTime.UtcNow);
        }
        else if (clientEvent.IsFinal)
        {
            Ended(clientEvent.UserId, clientEvent.RequestId);
        }
    }
}
