using System.Collections.Concurrent;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Hosting;
using Orleans.TestingHost;
using SpecLog.Client;

namespace SpecLog.Cluster.Tests;

/// <summary>
/// Tagged appends and server-side filtered subscriptions: the shards send only matching records plus the skipped
/// positions, GSN-ordered and unordered, from the cache and from disk, through a restart; bad tags and filters are refused.
/// </summary>
[Collection(SharedClusterCollection.Name)]
public sealed class FilteredSubscriptionTests(ClusterFixture fixture)
{
    private static readonly string?[] Tags = ["user-1", "user-2", "user-3", null];

    /// <summary>Appends <paramref name="count"/> records, tags in turn from <see cref="Tags"/>, from 4 concurrent producers; returns GSN → (tag, text).</summary>
    private static async Task<ConcurrentDictionary<long, (string? Tag, string Text)>> AppendTaggedAsync(SpecLogClient client, string test, int count, CancellationToken ct)
    {
        var acks = new ConcurrentDictionary<long, (string? Tag, string Text)>();
        await Task.WhenAll(Enumerable.Range(0, 4).Select(p => Task.Run(async () =>
        {
            for (var i = p; i < count; i += 4)
            {
                var payload = Payload.Make(test, p, i);
                var tag = Tags[(i / 4 + p) % Tags.Length];
                var gsn = tag is null ? await client.AppendAsync(payload, cancellationToken: ct) : await client.AppendAsync(payload, tag, cancellationToken: ct);
                acks[gsn] = (tag, Payload.Text(payload));
            }
        }, ct)));
        return acks;
    }

    [Fact]
    public async Task FilteredSubscriptions_DeliverExactlyTheMatchingRecords_AtTheirGsns_InOrder()
    {
        var ct = TestContext.Current.CancellationToken;
        var client = fixture.Client;
        var start = (await fixture.Grains.GetGrain<ISequencerGrain>(0).GetStatusAsync()).CommittedGsn;
        await using var whole = new LogProbe(client.SubscribeAsync(start, ct), ct);
        await using var user2 = new LogProbe(client.SubscribeAsync(RecordFilter.ForTags("user-2"), start, ct), ct);
        await using var users = new LogProbe(client.SubscribeAsync(RecordFilter.ForPrefixes("user-"), start, ct), ct);
        await using var unordered = new LogProbe(client.SubscribeUnorderedAsync(RecordFilter.ForTags("user-1", "user-3"), start, ct), ct);

        var acks = await AppendTaggedAsync(client, "filtered", 400, ct);
        var max = acks.Keys.Max();
        foreach (var probe in new[] { whole, user2, users, unordered })
        {
            await probe.WaitUntilAsync(p => p.ConfirmedUpTo > max, TimeSpan.FromSeconds(60), "confirmation of every append");
        }

        var mine = whole.Records.Where(r => acks.ContainsKey(r.Gsn)).ToList();
        Assert.Equal(acks.Count, mine.Count);
        foreach (var r in mine)
        {
            Assert.Equal(acks[r.Gsn].Tag, r.Tag); // the whole log carries every record's tag
        }

        void AssertMatches(LogProbe probe, Func<string?, bool> wanted, bool ordered, string what)
        {
            var expected = mine.Where(r => wanted(r.Tag)).Select(r => (r.Gsn, r.Tag, Payload.Text(r.Payload))).ToList();
            var seen = probe.Records.Where(r => r.Gsn <= max).Select(r => (r.Gsn, r.Tag, Payload.Text(r.Payload))).ToList();
            Assert.True(expected.Count > 50, $"{what}: the test appended too few matching records ({expected.Count})");
            Assert.Equal(expected, ordered ? seen : [.. seen.OrderBy(x => x.Gsn)]);
            Assert.All(probe.Records, r => Assert.True(wanted(r.Tag), $"{what}: record at {r.Gsn} tagged '{r.Tag}' does not match"));
        }

        AssertMatches(user2, t => t == "user-2", ordered: true, "tag user-2");
        AssertMatches(users, t => t is not null, ordered: true, "prefix user-");
        AssertMatches(unordered, t => t is "user-1" or "user-3", ordered: false, "unordered user-1 or user-3");

        // Confirmations of a filtered stream still cover the whole log's positions, as those of the whole log do.
        Assert.Equal(user2.Confirmations[0].FromGsn, start);
        Assert.All(user2.Confirmations.Zip(user2.Confirmations.Skip(1)), c => Assert.Equal(c.First.ToGsn, c.Second.FromGsn));

        // Reads give each record's tag back.
        var read = await client.ReadRangeAsync(acks.Keys.Min(), max + 1, ct);
        foreach (var r in read.Where(r => acks.ContainsKey(r.Gsn)))
        {
            Assert.Equal(acks[r.Gsn], (r.Tag, Payload.Text(r.Payload)));
        }
    }

    [Fact]
    public async Task AShardSendsAFilteredSubscriberOnlyMatchingRecords_AndEverySkippedSlotAsNoOpRuns()
    {
        var ct = TestContext.Current.CancellationToken;
        var client = fixture.Client;
        var shard = fixture.Grains.GetGrain<IShardGrain>(0);
        var fromSlot = (await shard.GetStatusAsync()).DurableSlots;
        var observer = new BatchRecorder();
        var reference = fixture.Grains.CreateObjectReference<IShardObserver>(observer);
        var id = Guid.NewGuid();
        try
        {
            await shard.SubscribeAsync(reference, id, fromSlot, RecordFilter.ForTags("user-3"));
            var acks = await Task.WhenAll(Enumerable.Range(0, 200).Select(i =>
                client.AppendAsync(Payload.Make("raw-filter", 0, i), i % 5 == 0 ? "user-3" : "user-1", shard: 0, cancellationToken: ct)));
            var lastSlot = (await shard.GetStatusAsync()).DurableSlots;
            await observer.WaitForSlotAsync(lastSlot, TimeSpan.FromSeconds(30));

            var batches = observer.Batches;
            var slot = fromSlot;
            var records = new List<ShardEntry>();
            foreach (var b in batches)
            {
                Assert.Equal(slot, b.FromSlot); // consecutive pushes, nothing missing
                foreach (var e in b.Entries)
                {
                    Assert.Equal(slot, e.Slot); // the entries cover every slot: records and skipped runs
                    slot += e.SlotCount;
                    if (!e.IsNoOp)
                    {
                        records.Add(e);
                    }
                }

                Assert.Equal(b.ToSlot, slot);
                for (var i = 1; i < b.Entries.Length; i++)
                {
                    Assert.False(b.Entries[i].IsNoOp && b.Entries[i - 1].IsNoOp, "adjacent skipped runs are sent as one");
                }
            }

            Assert.Equal(40, records.Count);
            Assert.All(records, e => Assert.Equal("user-3", e.Tag));
            var expected = acks.Where((_, i) => i % 5 == 0).Order().ToList();
            Assert.Equal(expected, records.Select(e => e.Gsn).Order().ToList());
        }
        finally
        {
            await shard.UnsubscribeAsync(id);
            fixture.Grains.DeleteObjectReference<IShardObserver>(reference);
        }
    }

    [Fact]
    public async Task BadTagsAndFilters_AreRefusedWithAClearError_AndWriteNothing()
    {
        var ct = TestContext.Current.CancellationToken;
        var client = fixture.Client;
        var record = Payload.Make("bad-tag", 0, 0);
        var tooLong = new string('x', RecordTags.MaxBytes + 1);
        Assert.Contains("empty", (await Assert.ThrowsAsync<ArgumentException>(() => client.AppendAsync(record, "", cancellationToken: ct))).Message);
        Assert.Contains("UTF-8 bytes", (await Assert.ThrowsAsync<ArgumentException>(() => client.AppendAsync(record, tooLong, cancellationToken: ct))).Message);
        Assert.Contains("UTF-8 bytes", (await Assert.ThrowsAsync<ArgumentException>(() => client.AppendAsync(record, new string('é', 128), cancellationToken: ct))).Message);
        await client.AppendAsync(record, new string('x', RecordTags.MaxBytes), cancellationToken: ct); // the longest tag is fine

        // The shard checks too (a client that skips the library's checks), before it writes anything.
        var shard = fixture.Grains.GetGrain<IShardGrain>(0);
        var before = (await shard.GetStatusAsync()).DurableSlots;
        var refused = Payload.Make("bad-tag-refused", 0, 0);
        await Assert.ThrowsAsync<ArgumentException>(() => shard.AppendTaggedAsync(Guid.NewGuid(), [1, 2], [refused, refused], ["ok", tooLong], ct));
        await Assert.ThrowsAsync<ArgumentException>(() => shard.AppendTaggedAsync(Guid.NewGuid(), [1, 2], [refused, refused], ["ok"], ct));
        await client.AppendAsync(record, shard: 0, cancellationToken: ct); // a later record: everything before it is readable
        var written = (await shard.ReadAsync(before, 10_000)).Entries.Where(e => !e.IsNoOp).Select(e => Payload.Text(e.Payload!)).ToList();
        Assert.Contains(Payload.Text(record), written);
        Assert.DoesNotContain(Payload.Text(refused), written);

        Assert.Throws<ArgumentException>(() => RecordFilter.ForTags());
        Assert.Throws<ArgumentException>(() => RecordFilter.ForPrefixes(""));
        await Assert.ThrowsAsync<ArgumentException>(async () =>
        {
            await foreach (var _ in client.SubscribeAsync(new RecordFilter([], []), 0, ct))
            {
            }
        });
        await Assert.ThrowsAsync<ArgumentException>(() =>
            shard.SubscribeAsync(fixture.Grains.CreateObjectReference<IShardObserver>(new BatchRecorder()), Guid.NewGuid(), 0, new RecordFilter([tooLong], [])));
    }

    [Fact]
    public async Task Tags_SurviveARestart_AndFilteredDeliveryFromDisk_MatchesTheLogBefore()
    {
        var ct = TestContext.Current.CancellationToken;
        var dir = Path.Combine(Path.GetTempPath(), "speclog-tests", Guid.NewGuid().ToString("N"));
        try
        {
            ConcurrentDictionary<long, (string? Tag, string Text)> acks;
            await using (var cluster = await StartSmallCacheAsync(dir))
            {
                acks = await AppendTaggedAsync(cluster.Client.ServiceProvider.GetRequiredService<SpecLogClient>(), "filter-restart", 600, ct);
                await cluster.StopAllSilosAsync(ct);
            }

            await using (var cluster = await StartSmallCacheAsync(dir))
            {
                var client = cluster.Client.ServiceProvider.GetRequiredService<SpecLogClient>();
                var max = acks.Keys.Max();
                await using var probe = new LogProbe(client.SubscribeAsync(RecordFilter.ForTags("user-1"), 0, ct), ct);
                var expected = acks.Where(a => a.Value.Tag == "user-1").OrderBy(a => a.Key).Select(a => (a.Key, a.Value.Text)).ToList();
                await probe.WaitUntilAsync(p => p.Records.Count >= expected.Count, TimeSpan.FromSeconds(60), $"{expected.Count} user-1 records from disk");
                Assert.Equal(expected, probe.Records.Where(r => r.Gsn <= max).Select(r => (r.Gsn, Payload.Text(r.Payload))));
                Assert.All(probe.Records, r => Assert.Equal("user-1", r.Tag));
            }
        }
        finally
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>One silo whose shards keep almost nothing in their recent-entry cache, so deliveries read the disk.</summary>
    private static async Task<InProcessTestCluster> StartSmallCacheAsync(string dataDirectory)
    {
        var builder = new InProcessTestClusterBuilder(1);
        builder.ConfigureSilo((_, silo) => silo.AddSpecLog(o =>
        {
            o.DataDirectory = dataDirectory;
            o.SegmentSize = 4 << 20;
            o.RecentCacheBytes = 4096;
        }));
        builder.ConfigureClient(client => client.AddSpecLogClient());
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return cluster;
    }

    /// <summary>A raw shard observer that keeps every batch and signals each one.</summary>
    private sealed class BatchRecorder : IShardObserver
    {
        private readonly object _gate = new();
        private readonly List<ShardEventBatch> _batches = [];
        private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public List<ShardEventBatch> Batches
        {
            get
            {
                lock (_gate)
                {
                    return [.. _batches.Where(b => b.ToSlot > b.FromSlot)];
                }
            }
        }

        public Task OnShardEvents(ShardEventBatch batch)
        {
            lock (_gate)
            {
                _batches.Add(batch);
                _changed.TrySetResult();
                _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            return Task.CompletedTask;
        }

        public async Task WaitForSlotAsync(long slot, TimeSpan timeout)
        {
            using var deadline = new CancellationTokenSource(timeout);
            while (true)
            {
                Task changed;
                lock (_gate)
                {
                    if (_batches.Count > 0 && _batches.Max(b => b.ToSlot) >= slot)
                    {
                        return;
                    }

                    changed = _changed.Task;
                }

                await changed.WaitAsync(deadline.Token);
            }
        }
    }
}
