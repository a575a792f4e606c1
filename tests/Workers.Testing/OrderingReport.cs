namespace Workers.Testing;

/// <summary>
/// What <see cref="OrderingChecker"/> found: breaches by kind, how many sessions had any (one bad session or many tell
/// different stories), and the first few as examples, each starting with its session id.
/// </summary>
public sealed record OrderingReport(int Reordered, int Duplicated, int Lost, int SessionsAffected, IReadOnlyList<string> Examples)
{
    public override string ToString() =>
        $"reordered {Reordered}, duplicated {Duplicated}, lost {Lost} in {SessionsAffected} sessions"
        + (Examples.Count > 0 ? ": " + string.Join("; ", Examples) : "");
}
