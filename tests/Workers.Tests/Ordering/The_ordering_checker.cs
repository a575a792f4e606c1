using Workers.Tests.Infrastructure;

namespace Workers.Tests.Ordering;

/// <summary>The checker every ordering test relies on catches each kind of breach.</summary>
public sealed class The_ordering_checker
{
    private static readonly Guid Session = Guid.NewGuid();

    private static OrderingReport Check(params int[] seen) =>
        OrderingChecker.Check(new Dictionary<Guid, int> { [Session] = 5 }, new Dictionary<Guid, IReadOnlyList<int>> { [Session] = seen });

    [Fact]
    public void Should_pass_an_intact_sequence() => Assert.Equal((0, 0, 0), Counts(Check(1, 2, 3, 4, 5)));

    [Fact]
    public void Should_catch_a_reordered_sequence() => Assert.Equal((1, 0, 0), Counts(Check(1, 3, 2, 4, 5)));

    [Fact]
    public void Should_catch_a_duplicated_sequence() => Assert.Equal((0, 1, 0), Counts(Check(1, 2, 2, 3, 4, 5)));

    [Fact]
    public void Should_catch_a_lost_message() => Assert.Equal((0, 0, 1), Counts(Check(1, 2, 4, 5)));

    [Fact]
    public void Should_catch_a_session_never_served() =>
        Assert.Equal(5, OrderingChecker.Check(new Dictionary<Guid, int> { [Session] = 5 }, new Dictionary<Guid, IReadOnlyList<int>>()).Lost);

    [Fact]
    public void Should_count_each_breached_session_once()
    {
        var (intact, reordered, broken) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());
        var report = OrderingChecker.Check(new Dictionary<Guid, int> { [intact] = 3, [reordered] = 3, [broken] = 3 },
            new Dictionary<Guid, IReadOnlyList<int>> { [intact] = [1, 2, 3], [reordered] = [2, 1, 3], [broken] = [1, 1] });
        Assert.Equal((1, 1, 2), Counts(report));
        Assert.Equal(2, report.SessionsAffected);
    }

    private static (int, int, int) Counts(OrderingReport r) => (r.Reordered, r.Duplicated, r.Lost);
}
