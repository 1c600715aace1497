using SpecLog.Client;
using SpecLog.Consumer;
using SpecLog.Server;

namespace SpecLog.Cluster.Tests;

/// <summary>Three shards on one silo; consumer checkpoints in the silo's data directory (the embedded default).</summary>
public sealed class ConsumerFixture : ClusterFixture
{
    protected override void Configure(SpecLogOptions options) => options.ShardCount = 3;
}

/// <summary>
/// The speculative consumer against a real log: it releases exactly the outputs a run over the confirmed log gives,
/// each once; a restart resumes from its checkpoint; a second consumer of the same name fences the first off.
/// </summary>
public sealed class SpeculativeConsumerTests(ConsumerFixture fixture) : IClassFixture<ConsumerFixture>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private SpeculativeConsumer<Dictionary<string, long>, string> NewConsumer(string name, RecordingSink sink, SpeculativeConsumerOptions options) =>
        new(fixture.Client, name, ConsumerTestApp.NewState, ConsumerTestApp.Apply, sink,
            new OrleansStateCodec<Dictionary<string, long>>(fixture.Cluster.Client.ServiceProvider), options);

    /// <summary>Appends <paramref name="count"/> records over a few keys from concurrent producers; returns one past the highest GSN acknowledged.</summary>
    private async Task<long> AppendAsync(string prefix, int count, CancellationToken ct)
    {
        var gsns = await Task.WhenAll(Enumerable.Range(0, 4).Select(p => Task.Run(async () =>
        {
            var max = 0L;
            for (var i = p; i < count; i += 4)
            {
                max = Math.Max(max, await fixture.Client.AppendAsync(ConsumerTestApp.Record($"{prefix}{i % 5}", 7 + (i * 13 % 40)), cancellationToken: ct));
            }

            return max;
        }, ct)));
        return gsns.Max() + 1;
    }

    private static Func<List<ReleasedOutput<string>>, bool> AllBelow(long end, int expected) =>
        outputs => outputs.Count(o => o.Gsn < end) >= expected;

    [Theory]
    [InlineData(ConsumerOrdering.Gsn)]
    [InlineData(ConsumerOrdering.PerShard)]
    public async Task A_consumer_releases_the_confirmed_logs_outputs_once_and_resumes_from_its_checkpoint(ConsumerOrdering ordering)
    {
        var ct = TestContext.Current.CancellationToken;
        var name = $"resume-{ordering}";
        var perShard = ordering == ConsumerOrdering.PerShard;
        var sink = new RecordingSink();
        var options = new SpeculativeConsumerOptions { Ordering = ordering, SnapshotEvery = 16, CheckpointInterval = TimeSpan.FromMilliseconds(200) };

        // First life: it consumes what is appended, then stops (saving a last checkpoint).
        using (var stop = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            var first = NewConsumer(name, sink, options);
            var run = first.RunAsync(stop.Token);
            var end = await AppendAsync(name, 300, ct);
            var expected = await ConsumerTestApp.ExpectedAsync(fixture.Client, 0, end, perShard, ct);
            await sink.WaitForAsync(AllBelow(end, expected.Count), Patience, ct);
            await stop.CancelAsync();
            await run;
            Assert.True(first.Statistics.Checkpoints >= 1, "the first life saved no checkpoint");
        }

        // More records while it is down; the second life resumes from the checkpoint instead of the start.
        var end2 = await AppendAsync(name, 200, ct);
        var all = await ConsumerTestApp.ExpectedAsync(fixture.Client, 0, end2, perShard, ct);
        var records = (await fixture.Client.ReadRangeAsync(0, end2, ct)).Count;
        using (var stop = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            var second = NewConsumer(name, sink, options);
            var run = second.RunAsync(stop.Token);
            await sink.WaitForAsync(AllBelow(end2, all.Count), Patience, ct);
            await stop.CancelAsync();
            await run;
            Assert.True(second.Statistics.Applied < records - 250, $"the second life applied {second.Statistics.Applied} of the {records} records: it did not resume from its checkpoint");
        }

        Assert.Equal(0, sink.Duplicates);
        var released = sink.Outputs.Where(o => o.Gsn < end2).Select(o => (o.Gsn, o.Index, o.Output)).ToList();
        if (perShard)
        {
            // Per shard, outputs come in each shard's order; shards interleave as their records are confirmed.
            Assert.Equal(all.Order(), released.Order());
            foreach (var g in sink.Outputs.Where(o => o.Gsn < end2).GroupBy(o => o.Shard))
            {
                Assert.True(g.Select(o => (o.Gsn, o.Index)).SequenceEqual(g.Select(o => (o.Gsn, o.Index)).Order()), $"shard {g.Key}'s outputs out of order");
            }
        }
        else
        {
            Assert.Equal(all, released);
        }
    }

    [Fact]
    public async Task A_second_consumer_of_the_same_name_fences_the_first_off()
    {
        var ct = TestContext.Current.CancellationToken;
        const string name = "fenced";
        var options = new SpeculativeConsumerOptions { CheckpointInterval = TimeSpan.FromMilliseconds(100) };
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var firstSink = new RecordingSink();
        var first = NewConsumer(name, firstSink, options);
        var firstRun = first.RunAsync(stop.Token);
        var end = await AppendAsync(name, 40, ct);
        var expected = await ConsumerTestApp.ExpectedAsync(fixture.Client, 0, end, perShard: false, ct);
        await firstSink.WaitForAsync(AllBelow(end, expected.Count), Patience, ct);

        // The same consumer started elsewhere takes the checkpoint over; the first one's next save is refused.
        var secondSink = new RecordingSink();
        var second = NewConsumer(name, secondSink, options);
        var secondRun = second.RunAsync(stop.Token);
        await AppendAsync(name, 40, ct);
        var e = await Assert.ThrowsAsync<CheckpointFencedException>(() => firstRun.WaitAsync(Patience, ct));
        Assert.Contains("taken over", e.Message);
        Assert.False(secondRun.IsCompleted);
        await stop.CancelAsync();
        await secondRun;
    }

    [Fact]
    public async Task Members_of_a_consumer_group_split_the_shards_hand_them_over_and_release_each_output_once()
    {
        var ct = TestContext.Current.CancellationToken;
        const string name = "group";
        var lease = TimeSpan.FromMilliseconds(900);
        var sink = new RecordingSink();
        var group = fixture.Grains.GetGrain<IConsumerGroupGrain>(name);
        SpeculativeConsumer<Dictionary<string, long>, string> Member(string id) => NewConsumer(name, sink, new SpeculativeConsumerOptions
        {
            Ordering = ConsumerOrdering.PerShard,
            Group = true,
            MemberId = id,
            GroupLease = lease,
            CheckpointInterval = TimeSpan.FromMilliseconds(200),
        });

        async Task Until(Func<GroupStatus, bool> condition, string what)
        {
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
            wait.CancelAfter(Patience);
            GroupStatus status;
            while (!condition(status = await group.GetStatusAsync()))
            {
                Assert.False(wait.IsCancellationRequested, $"{what}: not reached; the group has {string.Join(", ", status.Members.Select(m => $"{m.Key} [{string.Join(",", m.Value)}]"))}");
                await Task.Delay(50, ct); // polled: assignments move with heartbeats
            }
        }

        var overlaps = 0;
        using var stopA = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var stopB = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var a = Member("a");
        var b = Member("b");
        var runA = a.RunAsync(stopA.Token);
        await Until(st => st.Members.TryGetValue("a", out var held) && held.Length == 3, "a holds every shard");
        var producers = AppendAsync(name, 600, ct);

        // A second member joins: the shards are split between them, never held by both at once.
        var runB = b.RunAsync(stopB.Token);
        await Until(st => st.Members.Count == 2 && st.Members.Values.All(h => h.Length >= 1) && st.Members.Values.Sum(h => h.Length) == 3, "a and b split the shards");
        overlaps += a.Partitions.Intersect(b.Partitions).Count();

        // A ghost member joins and takes a shard, then dies without a word: its lease lapses and the shard moves back.
        var ghostGot = Array.Empty<int>();
        using (var wait = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            wait.CancelAfter(Patience);
            while (ghostGot.Length == 0)
            {
                ghostGot = (await group.HeartbeatAsync("ghost", [], lease)).Shards;
                await Task.Delay(lease / 3, wait.Token); // a heartbeat's period
            }
        }

        await Until(st => !st.Members.ContainsKey("ghost") && st.Members.Values.Sum(h => h.Length) == 3, "the ghost's lease lapsed and its shard moved back");
        overlaps += a.Partitions.Intersect(b.Partitions).Count();

        // a leaves: b takes everything.
        await stopA.CancelAsync();
        await runA;
        await Until(st => st.Members.Count == 1 && st.Members.TryGetValue("b", out var held) && held.Length == 3, "b holds every shard after a left");
        var end = await producers;
        var expected = await ConsumerTestApp.ExpectedAsync(fixture.Client, 0, end, perShard: true, ct);
        await sink.WaitForAsync(AllBelow(end, expected.Count), Patience, ct);
        await stopB.CancelAsync();
        await runB;

        Assert.Equal(0, overlaps);
        Assert.Equal(0, sink.Duplicates);
        Assert.Equal(expected.Order(), sink.Outputs.Where(o => o.Gsn < end).Select(o => (o.Gsn, o.Index, o.Output)).Order());
        Assert.True(b.Statistics.Released > 0 && a.Statistics.Released > 0, $"a released {a.Statistics.Released}, b {b.Statistics.Released}");
    }
}
