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

    public static async Task<TimeSpan> WaitForTurnsAsync(WorkerPool pool, long count, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (await pool.TurnCountAsync() < count)
        {
            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"{await pool.TurnCountAsync()} of {count} turns after {timeout}");
            }

            await Task.Delay(200);
        }

        return clock.Elapsed;
    }
}
