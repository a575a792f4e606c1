using Workers.Worker.Ordering;

namespace Workers.Tests.Ordering;

/// <summary>The pool's decisions as pure functions: quotas, hand-over, taking, lane admission. No broker, no database.</summary>
public sealed class The_partition_plan
{
    private static readonly HashSet<int> None = [];

    [Theory]
    [InlineData(16, 1)]
    [InlineData(16, 3)]
    [InlineData(16, 5)]
    [InlineData(16, 16)]
    [InlineData(16, 20)]
    [InlineData(7, 2)]
    public void Should_give_every_partition_a_place_and_every_member_floor_or_ceiling(int partitions, int members)
    {
        var quotas = Enumerable.Range(0, members).Select(rank => PartitionPlan.Quota(partitions, members, rank)).ToList();
        Assert.Equal(partitions, quotas.Sum());
        Assert.All(quotas, q => Assert.InRange(q, partitions / members, (partitions + members - 1) / members));
        // The larger shares go to the first members by rank, so every member computes the same split.
        Assert.Equal(quotas.OrderDescending(), quotas);
    }

    [Fact]
    public void Should_hand_over_the_highest_partitions_above_the_quota()
    {
        var changes = PartitionPlan.Decide(16, 2, 1, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], None, None);
        Assert.Equal([9, 8], changes.HandOver);
        Assert.Empty(changes.GiveUpNow);
        Assert.Equal(0, changes.Missing);
        Assert.Empty(changes.Candidates);
    }

    [Fact]
    public void Should_give_up_a_broken_partition_at_once_and_take_one_in_its_place()
    {
        var changes = PartitionPlan.Decide(4, 2, 0, [0, 1], new HashSet<int> { 1 }, None);
        Assert.Equal([1], changes.GiveUpNow);
        Assert.Empty(changes.HandOver);
        Assert.Equal(1, changes.Missing);
        // Not the broken one itself: it is released first, and another member may take it.
        Assert.Equal([2, 3], changes.Candidates);
    }

    [Fact]
    public void Should_start_the_scan_where_the_members_share_begins_and_skip_what_is_owned_or_being_released()
    {
        var changes = PartitionPlan.Decide(16, 4, 2, [9], None, new HashSet<int> { 10 });
        Assert.Equal(3, changes.Missing);
        Assert.Equal(8, changes.Candidates[0]);
        Assert.DoesNotContain(9, changes.Candidates);
        Assert.DoesNotContain(10, changes.Candidates);
        Assert.Equal(14, changes.Candidates.Count);
    }

    [Fact]
    public void Should_change_nothing_for_a_member_at_its_quota()
    {
        var changes = PartitionPlan.Decide(16, 4, 3, [12, 13, 14, 15], None, None);
        Assert.Empty(changes.GiveUpNow);
        Assert.Empty(changes.HandOver);
        Assert.Equal(0, changes.Missing);
    }

    [Theory]
    [InlineData(0, 0, true)]
    [InlineData(1, 0, false)]
    [InlineData(1, 8, true)]
    [InlineData(8, 8, true)]
    [InlineData(9, 8, false)]
    public void Should_admit_to_a_lane_while_fewer_than_the_limit_wait_behind_the_running_request(int inLane, int maxWaiting, bool admitted) =>
        Assert.Equal(admitted, LaneAdmission.Admits(inLane, maxWaiting));
}
