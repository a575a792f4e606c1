using System.Collections.Concurrent;
using System.Diagnostics;

namespace Workers.Benchmarks.Infrastructure;

/// <summary>
/// Counts the activities Npgsql starts in this process (ActivitySource "Npgsql"): one per command or batch executed,
/// plus whatever else this Npgsql version traces (connection opens); kept by operation name so the table says which.
/// </summary>
internal sealed class NpgsqlActivityCounter : IDisposable
{
    private readonly ActivityListener _listener;
    private readonly ConcurrentDictionary<string, long> _byName = new();
    private readonly ConcurrentQueue<string> _statements = new();

    public NpgsqlActivityCounter(bool keepStatements = false)
    {
        KeepStatements = keepStatements;
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "Npgsql",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllData,
            ActivityStopped = Stopped,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public bool KeepStatements { get; set; }

    public IReadOnlyDictionary<string, long> Snapshot() => new Dictionary<string, long>(_byName);

    /// <summary>Statement texts seen since the last call (only while <see cref="KeepStatements"/>).</summary>
    public IReadOnlyList<string> TakeStatements()
    {
        var list = new List<string>();
        while (_statements.TryDequeue(out var s))
        {
            list.Add(s);
        }

        return list;
    }

    public static IReadOnlyDictionary<string, long> Delta(IReadOnlyDictionary<string, long> after, IReadOnlyDictionary<string, long> before) =>
        after.ToDictionary(p => p.Key, p => p.Value - before.GetValueOrDefault(p.Key)).Where(p => p.Value != 0)
            .ToDictionary(p => p.Key, p => p.Value);

    public void Dispose() => _listener.Dispose();

    private void Stopped(Activity activity)
    {
        // Batches and single commands differ in the tags Npgsql sets; the operation name alone is the SQL verb or the
        // database name depending on the version, so the key is "kind: name".
        var batchSize = activity.GetTagItem("db.operation.batch.size") ?? activity.GetTagItem("db.npgsql.batch_size");
        var kind = batchSize is not null ? $"batch of {batchSize}" : "command";
        var name = activity.OperationName.Length > 40 ? activity.OperationName[..40] : activity.OperationName;
        _byName.AddOrUpdate($"{kind}: {name}", 1, (_, n) => n + 1);
        if (KeepStatements)
        {
            var text = activity.GetTagItem("db.query.text") ?? activity.GetTagItem("db.statement");
            _statements.Enqueue($"{kind}: {text}");
        }
    }
}
