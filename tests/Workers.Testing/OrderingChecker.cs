namespace Workers.Testing;

/// <summary>
/// Per-session sequence check: each session's requests carry counters 1..n in publish order. In what was observed,
/// a backward jump is a reorder, a repeat a duplicate, a counter never seen a loss. All three must be zero.
/// </summary>
public static class OrderingChecker
{
    public static OrderingReport Check(IReadOnlyDictionary<Guid, int> expectedPerSession,
        IReadOnlyDictionary<Guid, IReadOnlyList<int>> observed)
    {
        ArgumentNullException.ThrowIfNull(expectedPerSession);
        ArgumentNullException.ThrowIfNull(observed);
        int reordered = 0, duplicated = 0, lost = 0, affected = 0;
        var examples = new List<string>();
        foreach (var (session, expected) in expectedPerSession)
        {
            var seen = observed.TryGetValue(session, out var list) ? list : [];
            var distinct = new HashSet<int>();
            var highest = 0;
            var breached = false;
            foreach (var counter in seen)
            {
                if (!distinct.Add(counter))
                {
                    duplicated++;
                    breached = true;
                    Note(examples, $"{session}: {counter} again");
                }
                else if (counter < highest)
                {
                    reordered++;
                    breached = true;
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

            if (breached || missing > 0)
            {
                affected++;
            }
        }

        return new OrderingReport(reordered, duplicated, lost, affected, examples);
    }

    private static void Note(List<string> examples, string example)
    {
        if (examples.Count < 10)
        {
            examples.Add(example);
        }
    }
}
