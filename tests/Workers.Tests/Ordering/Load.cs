using System.Diagnostics;
using Workers.Contracts;
using Workers.Tests.Infrastructure;

namespace Workers.Tests.Ordering;

/// <summary>Sessions × requests with counters "msg 1".."msg n", published by several producers at once, each
/// session's requests in counter order.</summary>
public sealed class Load
{
    private readonly Dictionary<Guid, string> _textByRequest = [];

    public Load(int sessions, int perSession, int users = 50, Func<int, Guid>? sessionId = null)
    {
        Sessions = Enumerable.Range(0, sessions).Select(i => sessionId?.Invoke(i) ?? Guid.NewGuid()).ToList();
        PerSession = perSession;
        Requests = Sessions.Select((s, i) => Enumerable.Range(1, perSession)
            .Select(n => Broker.Request(s, $"user-{i % users}", $"msg {n} of session {i}")).ToList()).ToList();
        foreach (var request in Requests.SelectMany(r => r))
        {
            _textByRequest[request.RequestId] = request.Text;
        }
    }

    public IReadOnlyList<Guid> Sessions { get; }

    public int PerSession { get; }

    public IReadOnlyList<List<ChatRequested>> Requests { get; }

    public int Total => Sessions.Count * PerSession;

    public IReadOnlyDictionary<Guid, string> TextByRequest => _textByRequest;

    public IReadOnlyDictionary<Guid, int> Expected => Sessions.ToDictionary(s => s, _ => PerSession);

    /// <summary>The first few requests with no persisted turn, and every worker log line and event about them.</summary>
    public async Task<string> MissingAsync(WorkersSystem pool)
    {
        var persisted = await pool.PersistedCountersAsync();
        var missing = Requests.SelectMany(r => r)
            .Where(r => !persisted.TryGetValue(r.SessionId, out var seen) || !seen.Contains(WorkersSystem.Counter(r.Text)))
            .Take(3).ToList();
        return string.Join('\n', missing.Select(r => $"missing {r.RequestId} ({r.Text}):\n  " + string.Join("\n  ",
            pool.Processes.SelectMany(w => w.Log.Where(l => l.Contains(r.RequestId.ToString(), StringComparison.Ordinal)).Select(l => $"{w.Id}: {l}"))
                .Concat((pool.RecordsEvents ? pool.Events.Events : []).Where(e => e.RequestId == r.RequestId).Select(e => $"event {e.Type} seq {e.Seq} {e.Code}")))));
    }

    /// <summary>Publishes with <paramref name="producers"/> concurrent channels; a session always uses the same one.</summary>
    public async Task PublishAsync(Broker broker, int producers = 4, TimeSpan? pause = null)
    {
        await Task.WhenAll(Enumerable.Range(0, producers).Select(async p =>
        {
            await using var channel = await broker.OpenPublisherAsync();
            var mine = Requests.Where((_, i) => i % producers == p).ToList();
            for (var n = 0; n < PerSession; n++)
            {
                foreach (var session in mine)
                {
                    await broker.PublishOnAsync(channel, session[n]);
                }

                if (pause is { } wait)
                {
                    await Task.Delay(wait);
                }
            }
        }));
    }

    public static async Task<TimeSpan> WaitForTurnsAsync(WorkersSystem pool, long count, TimeSpan timeout, Load? load = null)
    {
        var clock = Stopwatch.StartNew();
        var (last, progressAt) = (0L, clock.Elapsed);
        while (await pool.TurnCountAsync() is var done && done < count)
        {
            // No progress for 30 s means stuck, not slow: stop early with a diagnosis.
            (last, progressAt) = done > last ? (done, clock.Elapsed) : (last, progressAt);
            if (clock.Elapsed - progressAt > TimeSpan.FromSeconds(30))
            {
                timeout = clock.Elapsed;
            }

            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"{await pool.TurnCountAsync()} of {count} turns after {timeout}\n{await pool.DiagnoseAsync()}" +
                    (load is null ? "" : "\n" + await load.MissingAsync(pool)));
            }

            await Task.Delay(200);
        }

        return clock.Elapsed;
    }
}
