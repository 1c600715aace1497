using System.Text;
using SpecLog.Client;

namespace SpecLog.Cluster.Tests;

[Collection(SharedClusterCollection.Name)]
public sealed class SmokeTests(ClusterFixture fixture)
{
    [Fact]
    public async Task Append_IsAcknowledgedWithGsn_AndReadableThere()
    {
        var ct = TestContext.Current.CancellationToken;
        var gsn = await fixture.Client.AppendAsync(Encoding.UTF8.GetBytes("T|hello"), 2, ct);
        var record = await fixture.Client.ReadAsync(gsn, ct);
        Assert.NotNull(record);
        Assert.Equal(2, record.Shard);
        Assert.Equal("T|hello", Encoding.UTF8.GetString(record.Payload.Span));
    }
}
