using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Options;
using SpecLog.Client;

namespace SpecLog.Cluster.Tests;

/// <summary>
/// A subscriber whose consumer stops reading costs bounded memory on both sides and never holds the shard: once its
/// buffer stays full the shard drops it (keeping nothing for it), appends go on, and when the consumer reads again
/// it resumes from its own position with every record exactly once, in order.
/// </summary>
[Collection(SharedClusterCollection.Name)]
public sealed class StalledSubscriberTests(ClusterFixture fixture)
{
    private const int Shard = 1;
    private const int Records = 300;

    [Fact(Timeout = 120_000)]
    public async Task A_subscriber_that_stops_reading_is_dropped_and_resumes_from_its_position_without_loss_or_duplicates()
    {
        var ct = TestContext.Current.CancellationToken;
        var client = new SpecLogClient(fixture.Cluster.Client, Options.Create(new SpecLogClientOptions
        {
            SubscriptionBuffer = 2,
            SubscriptionRefresh = TimeSpan.FromMilliseconds(200),
        }));
        var shard = fixture.Grains.GetGrain<IShardGrain>(Shard);
        var before = await shard.GetStatusAsync();
        var tag = $"{Payload.Tag}stalled-{Guid.NewGuid():N}|";
        var expected = new List<string>();

        await using var events = client.SubscribeShardAsync(Shard, before.DurableSlots, ct).GetAsyncEnumerator(ct);
        var first = events.MoveNextAsync(); // registers the subscription; completes with the first event

        // Nobody reads after the first event: the shard must neither wait for the subscriber nor keep it.
        for (var i = 0; i < Records; i++)
        {
            var payload = $"{tag}{i}";
            await client.AppendAsync(Encoding.UTF8.GetBytes(payload), Shard, ct);
            expected.Add(payload);
        }

        // Dropped after about a refresh interval (200 ms) of full buffer, not when Orleans' 30 s response timeout ends a
        // push held by the consumer (what happened before: the test then waited 30 s and failed this bound).
        Assert.True(await first);
        await WaitUntilAsync(async () => (await shard.GetStatusAsync()).Subscribers <= before.Subscribers, "the shard to drop the stalled subscriber", TimeSpan.FromSeconds(10), ct);

        // Reading again: the subscription comes back from the consumer's position, every record once and in order.
        var seen = new List<string>();
        void Take(SpecLogEvent e)
        {
            if (e is SpeculativeRecord r && Payload.Text(r.Payload) is var text && text.StartsWith(tag, StringComparison.Ordinal))
            {
                seen.Add(text);
            }
        }

        Take(events.Current);
        while (seen.Count < Records && await events.MoveNextAsync())
        {
            Take(events.Current);
        }

        Assert.Equal(expected, seen);
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, TimeSpan timeout, CancellationToken ct)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (!await condition())
        {
            Assert.True(Stopwatch.GetTimestamp() < deadline, $"waited {timeout.TotalSeconds} s for {what}");
            await Task.Delay(20, ct);
        }
    }
}
