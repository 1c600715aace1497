using Microsoft.Extensions.Options;
using SpecLog.Client;

namespace SpecLog.Cluster.Tests;

/// <summary>Client settings that cannot work are refused when the client is built, naming the setting.</summary>
[Collection(SharedClusterCollection.Name)]
public sealed class ClientOptionsTests(ClusterFixture fixture)
{
    [Theory]
    [InlineData(nameof(SpecLogClientOptions.MaxAppendsInFlightPerShard))]
    [InlineData(nameof(SpecLogClientOptions.SubscriptionBuffer))]
    [InlineData(nameof(SpecLogClientOptions.SubscriptionRefresh))]
    [InlineData(nameof(SpecLogClientOptions.AppendCallTimeout))]
    public void Unusable_settings_are_refused_with_the_setting_named(string setting)
    {
        var options = new SpecLogClientOptions();
        switch (setting)
        {
            case nameof(SpecLogClientOptions.MaxAppendsInFlightPerShard):
                options.MaxAppendsInFlightPerShard = 0;
                break;
            case nameof(SpecLogClientOptions.SubscriptionBuffer):
                options.SubscriptionBuffer = 0;
                break;
            case nameof(SpecLogClientOptions.AppendCallTimeout):
                options.AppendCallTimeout = TimeSpan.Zero;
                break;
            default:
                options.SubscriptionRefresh = TimeSpan.Zero;
                break;
        }

        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new SpecLogClient(fixture.Cluster.Client, Options.Create(options)));
        Assert.Contains(setting, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task One_append_in_flight_per_shard_still_commits_every_concurrent_append_in_order()
    {
        // At the limit, appends queue and leave together in the next call: each still gets its own, increasing GSN.
        var client = new SpecLogClient(fixture.Cluster.Client, Options.Create(new SpecLogClientOptions { MaxAppendsInFlightPerShard = 1 }));
        var payloads = Enumerable.Range(0, 50).Select(i => Payload.Make(nameof(One_append_in_flight_per_shard_still_commits_every_concurrent_append_in_order), 0, i)).ToArray();
        var gsns = await Task.WhenAll(payloads.Select(p => client.AppendAsync(p, 0, TestContext.Current.CancellationToken)));
        Assert.Equal(gsns.Length, gsns.Distinct().Count());
        for (var i = 0; i < gsns.Length; i++)
        {
            var read = await client.ReadAsync(gsns[i], TestContext.Current.CancellationToken);
            Assert.NotNull(read);
            Assert.Equal(payloads[i], read.Payload.ToArray());
        }
    }
}
