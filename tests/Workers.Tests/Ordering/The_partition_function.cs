using Workers.Contracts;

namespace Workers.Tests.Ordering;

/// <summary>The wire contract's test vectors: every publisher, in any language, must compute the same partition.</summary>
public sealed class The_partition_function
{
    [Theory]
    [InlineData("00000000-0000-0000-0000-000000000000", 3192360657u, "01")]
    [InlineData("6f1c1e9a-6a43-4b8e-9d0e-3c2b1a000001", 2183771341u, "13")]
    public void Should_match_the_contracts_test_vectors(string sessionId, uint hash, string routingKey)
    {
        Assert.Equal(hash, Partitioning.Fnv1a32(sessionId));
        Assert.Equal(routingKey, Partitioning.RoutingKey(Guid.Parse(sessionId), 16));
        Assert.Equal("workers.chat-requests.p" + routingKey, Partitioning.QueueName(int.Parse(routingKey, System.Globalization.CultureInfo.InvariantCulture)));
    }

    [Fact]
    public void Should_hash_the_lower_case_hyphenated_form_whatever_form_the_id_came_in()
    {
        var id = Guid.Parse("6F1C1E9A6A434B8E9D0E3C2B1A000001");
        Assert.Equal(13, Partitioning.PartitionOf(id, 16));
    }
}
