namespace Workers.Tests.Infrastructure;

/// <summary>
/// Per-session sequence check: each session's requests carry counters 1..n in publish order. In what was observed,
/// a backward jump is a reorder, a repeat a duplicate, a counter never seen a loss. All three must be zero.
/// </summary>
public static class OrderingChecker
{
    public static OrderingReport Check(IReadOnlyDictionary<Guid, int> expectedPerSession, IReadOnlyDictionary<Guid, IReadOnlyList<int>> observed)
    {
        ArgumentNullException.ThrowIfNull(expectedPerSession);
        ArgumentNullException.ThrowIfNull(observed);
        int reordered = 0, duplicated = 0, lost = 0;
        var examples = new List<string>();
        foreach (var (session, expected) in expectedPerSession)
        {
            var seen = observed.TryGetValue(session, out var list) ? list : [];
            var distinct = new HashSet<int>();
            var highest = 0;
            foreach (var counter in seen)
            {
                if (!distinct.Add(counter))
                {
                    duplicated++;
                    Note(examples, $"{session}: {counter} again");
                }
                else if (counter < highest)
                {
                    reordered++;
                    Note(examples, $"{session}: {counter} after {highest}");
                }

                highest = Math.Max(highest, counter);
            }

            var missing = Enumerable.Range(1, expected).Count(c => !distinct.Contains(c));
            lost += missing;
            if (missing > 0)
            {
                Note(examples, $"{session}: {missing} of {expected} never seen");
            }
        }

        return new OrderingReport(reordered, duplicated, lost, examples);
    }

    private static void Note(List<string> examples, string example)
    {
        if (examples.Count < 10)
        {
            examples.Add(example);
        }
    }
}

public sealed record OrderingReport(int Reordered, int Duplicated, int Lost, IReadOnlyList<string> Examples)
{
    public override string ToString() =>
        $"reordered {Reordered}, duplicated {Duplicated}, lost {Lost}" + (Examples.Count > 0 ? ": " + string.Join("; ", Examples) : "");
}
