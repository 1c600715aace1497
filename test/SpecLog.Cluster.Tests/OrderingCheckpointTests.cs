using SpecLog.Client;
using SpecLog.Server;

namespace SpecLog.Cluster.Tests;

/// <summary>One silo, Copilot ordering (n = 3) with checkpoints every 64 KiB of records and 1 MiB log segments.</summary>
public sealed class CheckpointingFixture : ClusterFixture
{
    protected override void Configure(SpecLogOptions options)
    {
        options.ShardCount = 2;
        options.SegmentSize = 1 << 20;
        options.MaxRecordSize = 64 << 10;
        options.Replication.CheckpointMinBytes = 64 << 10;
    }
}

/// <summary>
/// Bounded growth of the ordering layer: every replica compacts what all have committed, writes checkpoints and
/// deletes its log's older segments; restarted, replicas resume from their checkpoints (the log is not replayed from
/// its start) and the log goes on with every acknowledged record where it was; a trim shrinks their window history,
/// which the checkpoints keep.
/// </summary>
public sealed class OrderingCheckpointTests(CheckpointingFixture fixture) : IClassFixture<CheckpointingFixture>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Replicas_checkpoint_compact_and_resume_from_their_checkpoints_through_restarts_and_a_trim()
    {
        var ct = TestContext.Current.CancellationToken;
        var client = fixture.Client;
        var acks = new List<(long Gsn, string Text)>();
        var round = 0;
        async Task FillAsync(int batches)
        {
            acks.AddRange(await TrimTestBase.FillAsync(client, $"{nameof(OrderingCheckpointTests)}-{round++}", batches, ct));
        }

        // Appends until every replica has written checkpoints, compacted both Copilot logs and let log segments go.
        // Polled: checkpoints happen on the replicas' timers, with no event a test can await.
        var replicas = Enumerable.Range(0, 3).Select(k => fixture.Grains.GetGrain<ISequencerReplicaGrain>(k)).ToArray();
        ReplicaStatus[] statuses = [];
        var deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            await FillAsync(10);
            statuses = await Task.WhenAll(replicas.Select(r => r.GetStatusAsync()));
            if (statuses.All(s => s.Checkpoints >= 2 && s.LogFirstEntry > 0 && s.Base0 > 0 && s.Base1 > 0))
            {
                break;
            }

            Assert.True(DateTime.UtcNow < deadline, $"no checkpoints after {acks.Count} records: {string.Join("; ", statuses.Select(Describe))}");
        }

        var output = TestContext.Current.TestOutputHelper;
        output?.WriteLine($"after {acks.Count} records: {string.Join("; ", statuses.Select(Describe))}");

        // Restarted, every replica resumes from its checkpoint: its log still starts above entry 0, and the state it
        // rebuilt orders the log on from where it was.
        foreach (var replica in replicas)
        {
            await fixture.Cluster.DeactivateAsync(replica);
        }

        var restarted = await Task.WhenAll(replicas.Select(r => r.GetStatusAsync()));
        Assert.All(restarted.Zip(statuses), p => Assert.True(p.First.LogFirstEntry >= p.Second.LogFirstEntry && p.First.LogFirstEntry > 0, $"replica {p.First.Replica} restarted with its log from entry {p.First.LogFirstEntry}"));
        Assert.All(restarted.Zip(statuses), p => Assert.True(p.First.ActivatedAt > p.Second.ActivatedAt, $"replica {p.First.Replica} was not restarted"));
        output?.WriteLine($"restarted: {string.Join("; ", restarted.Select(Describe))}");
        await FillAsync(10);
        await AssertAllReadableAsync(client, acks, 0, ct);

        // A trim shrinks the window history on every replica; the next checkpoints keep it shrunk through a restart.
        var point = acks[acks.Count / 2].Gsn;
        await client.TrimAsync(point, ct);
        var trimmed = await Task.WhenAll(replicas.Select(r => r.GetStatusAsync()));
        Assert.All(trimmed, s => Assert.True(s.FirstWindow > 0, $"replica {s.Replica} keeps windows from {s.FirstWindow} after a trim below GSN {point}"));
        var checkpointsAfterTrim = trimmed.Select(s => s.Checkpoints).ToArray();
        deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            await FillAsync(10);
            statuses = await Task.WhenAll(replicas.Select(r => r.GetStatusAsync()));
            if (statuses.Select((s, k) => s.Checkpoints > checkpointsAfterTrim[k]).All(x => x))
            {
                break;
            }

            Assert.True(DateTime.UtcNow < deadline, $"no checkpoint after the trim: {string.Join("; ", statuses.Select(Describe))}");
        }

        foreach (var replica in replicas)
        {
            await fixture.Cluster.DeactivateAsync(replica);
        }

        var afterTrim = await Task.WhenAll(replicas.Select(r => r.GetStatusAsync()));
        Assert.All(afterTrim, s => Assert.True(s.FirstWindow >= trimmed[s.Replica].FirstWindow, $"replica {s.Replica} restarted with windows from {s.FirstWindow}, below the trim's {trimmed[s.Replica].FirstWindow}"));
        output?.WriteLine($"trimmed below GSN {point}, checkpointed and restarted: {string.Join("; ", afterTrim.Select(s => $"{Describe(s)}, windows from {s.FirstWindow}"))}");
        await FillAsync(5);
        await AssertAllReadableAsync(client, acks, point, ct);
        Assert.Equal(point, (await fixture.Grains.GetGrain<ISequencerGrain>(0).GetStatusAsync()).TrimmedBelowGsn);
    }

    private static string Describe(ReplicaStatus s) =>
        $"replica {s.Replica}: {s.Checkpoints} checkpoints, log {s.LogFirstEntry}..{s.LogEntries}, bases {s.Base0}/{s.Base1}, executed {s.Executed0}/{s.Executed1}";

    /// <summary>Every acknowledged record at or above <paramref name="from"/> reads back at its GSN (once committed).</summary>
    private static async Task AssertAllReadableAsync(SpecLogClient client, List<(long Gsn, string Text)> acks, long from, CancellationToken ct)
    {
        var last = acks.Max(a => a.Gsn);
        await using (var probe = new LogProbe(client.SubscribeAsync(from, ct), ct))
        {
            await probe.WaitUntilAsync(p => p.ConfirmedUpTo > last, Patience, $"confirmation past GSN {last}");
        }

        await TrimTestBase.AssertRetainedAsync(client, acks, from, ct);
    }
}
