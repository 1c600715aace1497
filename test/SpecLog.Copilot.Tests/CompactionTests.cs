namespace SpecLog.Copilot.Tests;

/// <summary>Compaction of the acceptor state, and checkpoints a replica restarts from.</summary>
public sealed class CompactionTests(ITestOutputHelper output)
{
    private const int P = 0;
    private const int Q = 1;
    private const int A = 2;

    [Fact]
    public void A_peer_not_heard_from_blocks_compaction_and_the_slowest_peer_bounds_it()
    {
        var h = new Harness(Harness.Defaults(3));
        h.Crash(A);
        SubmitBoth(h, group: 1, count: 6);
        Assert.True(h.Run(2_000_000, () => Executed(h, P, 6) && Executed(h, Q, 6)));
        h.Run(200_000);                                        // heartbeats carry the committed prefixes

        var p = h.Replicas[P];
        Assert.True(p.ExecutedThrough(0) + p.ExecutedThrough(1) > 0);
        Assert.Equal(0, p.SafeCompactionPoint(0));              // A never reported a committed prefix
        Assert.Equal(0, p.SafeCompactionPoint(1));
        Assert.Equal(0, p.Compact(0, long.MaxValue) + p.Compact(1, long.MaxValue));
        Assert.Equal(0, p.LogBase(0));

        // A comes back, catches up and reports: now the whole executed prefix may go.
        h.Restart(A);
        Assert.True(h.Run(2_000_000, () => Executed(h, A, 6)
            && Enumerable.Range(0, 2).All(log => h.Replicas[P].SafeCompactionPoint(log) == h.Replicas[P].ExecutedThrough(log))));
        var heads = new[] { p.ExecutedThrough(0), p.ExecutedThrough(1) };
        Assert.Equal(heads[0] + heads[1], p.Compact(0, long.MaxValue) + p.Compact(1, long.MaxValue));
        Assert.Equal(heads[0], p.LogBase(0));
        Assert.Equal(heads[1], p.LogBase(1));
        Assert.Equal(heads[0] + heads[1], p.Counters.SlotsCompacted);

        // A falls silent again: P keeps executing, but cannot compact past what A last reported.
        SubmitBoth(h, group: 2, count: 4);
        Assert.True(h.Run(2_000_000, () => Executed(h, P, 10) && Executed(h, Q, 10), e => e.From != A && e.To != A));
        h.Run(200_000, deliverable: e => e.From != A && e.To != A);
        for (var log = 0; log < 2; log++)
        {
            Assert.True(p.ExecutedThrough(log) >= heads[log]);
            Assert.Equal(heads[log], p.SafeCompactionPoint(log));
        }

        Assert.True(p.ExecutedThrough(0) + p.ExecutedThrough(1) > heads[0] + heads[1]);
        Assert.Equal(0, p.Compact());
    }

    [Fact]
    public void Messages_about_compacted_entries_are_dropped_harmlessly()
    {
        var h = new Harness(Harness.Defaults(3));
        SubmitBoth(h, group: 1, count: 6);
        Assert.True(h.Run(2_000_000, () => Enumerable.Range(0, 3).All(r => Executed(h, r, 6))));
        h.Run(200_000);                                        // heartbeats carry the committed prefixes
        var a = h.Replicas[A];
        Assert.True(a.Compact(0, long.MaxValue) > 0);
        var b = a.LogBase(0);
        Assert.True(b >= 1);
        Assert.False(a.TryGetCommitted(0, 0, out _));
        Assert.Equal(SlotStatus.Committed, a.InspectSlot(0, 0).Status);

        var value = new EntryValue<int>(false, -1, [new Command<int>(new CommandId(9, 1), 0)]);
        var fx = new List<Effect<int>>();
        var now = h.Now + 1;
        a.Handle(P, new FastAccept<int>(0, 0, new Ballot(0, P), value), now, fx);
        a.Handle(Q, new Accept<int>(0, 0, new Ballot(7, Q), value), now, fx);
        a.Handle(Q, new Prepare<int>(0, 0, new Ballot(8, Q), null), now, fx);
        a.Handle(Q, new Commit<int>(0, 0, value), now, fx);       // not its committed value: would throw if it were learnt
        a.StartRecovery(0, 0, now, fx);

        var sent = fx.OfType<SendEffect<int>>().Select(s => s.Message)
            .Concat(fx.OfType<BroadcastEffect<int>>().Select(x => x.Message))
            .Where(m => m is not Heartbeat<int>)
            .ToList();
        Assert.Empty(fx.OfType<PersistEffect<int>>());
        Assert.Empty(fx.OfType<CommittedEffect<int>>());
        Assert.Equal([new CommitAck<int>(0, 0)], sent);           // only the ack, so a proposer stops resending
        Assert.Equal(b, a.LogBase(0));
        Assert.Equal(SlotStatus.Committed, a.InspectSlot(0, 0).Status);

        // A catch-up from below the base is served from the base.
        fx.Clear();
        a.Handle(P, new CatchUpRequest<int>(0, 0), now, fx);
        var commits = fx.OfType<SendEffect<int>>().Select(s => s.Message).OfType<Commit<int>>().ToList();
        Assert.All(commits, c => Assert.True(c.Slot >= b));
        Assert.Equal(a.CommittedPrefix(0) - b, commits.Count);
    }

    [Fact]
    public void A_checkpoint_rebuilds_a_replica_that_executes_exactly_the_entries_after_its_heads()
    {
        var h = new Harness(Harness.Defaults(3));
        SubmitBoth(h, group: 1, count: 5);
        Assert.True(h.Run(2_000_000, () => Enumerable.Range(0, 3).All(r => Executed(h, r, 5))));
        h.Run(200_000);                                        // heartbeats carry the committed prefixes
        var a = h.Replicas[A];
        a.Compact(0, long.MaxValue);
        a.Compact(1, long.MaxValue);
        Assert.True(a.LogBase(0) + a.LogBase(1) > 0);

        var checkpoint = h.Checkpoint(A);
        var header = checkpoint.Header;
        Assert.Same(header, checkpoint.Records[0]);
        Assert.Equal((a.ExecutedThrough(0), a.ExecutedThrough(1)), (header.Head0, header.Head1));
        Assert.Equal((a.LogBase(0), a.LogBase(1)), (header.Base0, header.Base1));
        Assert.Equal(5, header.HighWater.Count);
        Assert.All(Enumerable.Range(101, 5), client => Assert.Equal(1, header.HighWater[client]));
        Assert.Equal(2, checkpoint.Records.OfType<ViewPromiseRecord<int>>().Count());
        Assert.All(checkpoint.Records.OfType<SlotRecord<int>>(), s => Assert.True(s.Slot >= (s.Log == 0 ? header.Base0 : header.Base1)));

        // Rebuilt from the checkpoint alone, the replica stands at the heads and executes nothing again.
        var rebuilt = new Replica<int>(h.Options, A, new Random(5), checkpoint.Records);
        var fx = new List<Effect<int>>();
        rebuilt.Start(h.Now, fx);
        Assert.Empty(fx.OfType<ExecuteEffect<int>>());
        Assert.Equal((header.Head0, header.Head1), (rebuilt.ExecutedThrough(0), rebuilt.ExecutedThrough(1)));
        Assert.True(rebuilt.HasExecuted(new CommandId(105, 1)));
        Assert.Equal((a.CommittedPrefix(0), a.CommittedPrefix(1)), (rebuilt.CommittedPrefix(0), rebuilt.CommittedPrefix(1)));

        // More commands after the checkpoint; then A restarts from the checkpoint and the records persisted after it.
        SubmitBoth(h, group: 2, count: 4);
        Assert.True(h.Run(2_000_000, () => Enumerable.Range(0, 3).All(r => Executed(h, r, 9))));
        Assert.IsType<CheckpointRecord<int>>(h.Disk(A)[0]);
        Assert.True(h.Disk(A).Count > checkpoint.Records.Count);
        h.Crash(A);
        var before = h.Executed.Count;
        h.Restart(A);
        var again = h.Executed.Skip(before).Where(e => e.Replica == A).Select(e => e.Command).ToList();
        Assert.Equal(Enumerable.Range(201, 4).Select(c => new CommandId(c, 1)), again.OrderBy(c => c.Client));   // exactly the four after the heads

        // And it goes on: every later command executes once, in the common order (the checker's I3/I4/I5).
        SubmitBoth(h, group: 3, count: 3);
        Assert.True(h.Run(2_000_000, () => Enumerable.Range(0, 3).All(r => Executed(h, r, 12))));
        Assert.Equal(12, h.Checker.ExecutedCount(A));
    }

    [Fact]
    public void A_pilot_rebuilt_from_its_checkpoint_resumes_as_pilot()
    {
        var h = new Harness(Harness.Defaults(3));
        SubmitBoth(h, group: 1, count: 3);
        Assert.True(h.Run(2_000_000, () => Enumerable.Range(0, 3).All(r => Executed(h, r, 3))));
        var checkpoint = h.Replicas[P].TakeCheckpoint();
        var rebuilt = new Replica<int>(h.Options, P, new Random(5), checkpoint.Records);
        Assert.True(rebuilt.IsActivePilot(0));
        Assert.False(rebuilt.IsActivePilot(1));
    }

    [Fact]
    public void A_checkpoint_record_must_come_first()
    {
        var h = new Harness(Harness.Defaults(3));
        var checkpoint = h.Replicas[A].TakeCheckpoint();
        Assert.Throws<ArgumentException>(() => new Replica<int>(h.Options, A, new Random(1), [new KnownSlotRecord<int>(0, 3), checkpoint.Header]));
        Assert.Throws<ArgumentException>(() => new Replica<int>(
            h.Options, A, new Random(1), [new CheckpointRecord<int>(1, 0, 2, 0, new Dictionary<int, long>())]));   // base above head
    }

    /// <summary>
    /// The simulator with frequent compaction and checkpoints (chunk 1): entries are compacted, checkpoints replace
    /// records, replicas restart from them, and every invariant holds. Fails if none of that happened.
    /// </summary>
    [Theory]
    [InlineData(3)]
    [InlineData(5)]
    public void Simulated_hosts_compact_checkpoint_and_restart_from_checkpoints(int n)
    {
        long compacted = 0, checkpoints = 0, restarts = 0;
        for (var seed = 1; seed <= 60; seed++)
        {
            var sim = new Simulation(seed, n, tweak: t =>
            {
                t.CompactionRate = 0.3;
                t.CheckpointRate = 0.05;
                t.CompactionChunk = 1;
            });
            output.WriteLine(sim.Run());
            compacted += sim.Counters.GetValueOrDefault("SlotsCompacted");
            checkpoints += sim.Checkpoints;
            restarts += sim.CheckpointRestarts;
        }

        output.WriteLine($"n={n}: {compacted} entries compacted, {checkpoints} checkpoints, {restarts} restarts from a checkpoint");
        Assert.True(compacted > 1_000, $"only {compacted} entries compacted");
        Assert.True(checkpoints > 100, $"only {checkpoints} checkpoints");
        Assert.True(restarts > 5, $"only {restarts} restarts from a checkpoint");
    }

    /// <summary>Submits <paramref name="count"/> commands to both pilots, one per client (clients 100 × group + 1, 2, ...), so none supersedes another.</summary>
    private static void SubmitBoth(Harness h, int group, int count)
    {
        for (var k = 1; k <= count; k++)
        {
            h.Submit(P, (100 * group) + k, 1);
            h.Submit(Q, (100 * group) + k, 1);
        }
    }

    private static bool Executed(Harness h, int replica, int count) => h.Checker.ExecutedCount(replica) >= count;
}
