namespace SpecLog.Copilot.Tests;

/// <summary>Single rules of the rebuild after a disk loss (the simulator checks the rule as a whole).</summary>
public sealed class RebuildTests
{
    private const int P = 0;
    private const int Q = 1;
    private const int A = 2;

    [Fact]
    public void A_rebuilt_pilot_starts_at_the_floor_abstains_below_it_and_keeps_the_floor_across_restarts()
    {
        var h = new Harness(Harness.Defaults(3));
        for (var k = 1; k <= 4; k++)
        {
            h.Submit(P, 100 + k, 1);
            h.Submit(Q, 100 + k, 1);
        }

        Assert.True(h.Run(2_000_000, () => Enumerable.Range(0, 3).All(r => h.Checker.ExecutedCount(r) >= 4)));

        // P (pilot of log 0) loses its disk. The others answer the probe; Q gives the transfer.
        var floor = RebuildFloor.Max([h.Replicas[Q].FloorContribution(P), h.Replicas[A].FloorContribution(P)]);
        Assert.Equal(Ballot.Max(h.Replicas[Q].ViewBallot(0), h.Replicas[A].ViewBallot(0)), floor.View0);
        Assert.Equal(Math.Max(h.Replicas[Q].MaxKnownSlot(0), h.Replicas[A].MaxKnownSlot(0)), floor.Known0);
        Assert.Throws<ArgumentOutOfRangeException>(() => h.Replicas[Q].FloorContribution(Q));

        var transfer = h.Replicas[Q].TakeTransferCheckpoint();
        Assert.All(transfer.Records.Skip(1), r => Assert.Equal(SlotStatus.Committed, Assert.IsType<SlotRecord<int>>(r).Status));
        Assert.DoesNotContain(transfer.Records, r => r is ViewPromiseRecord<int> or PilotRecord<int> or KnownSlotRecord<int>);
        var records = Replica<int>.RebuildRecords(transfer, floor);
        Assert.IsType<RebuildRecord<int>>(records[^1]);
        Assert.Throws<ArgumentException>(() => Replica<int>.RebuildRecords(h.Replicas[Q].TakeCheckpoint(), floor));

        var rebuilt = new Replica<int>(h.Options, P, new Random(1), records);
        Assert.False(rebuilt.IsActivePilot(0));                      // not even of the initial view it owned
        Assert.Equal(floor, rebuilt.Floor);
        Assert.True(rebuilt.IsRebuilding(0) || rebuilt.CommittedPrefix(0) > floor.Known0);
        Assert.Equal(floor.View0, rebuilt.ViewBallot(0));
        Assert.True(rebuilt.MaxKnownSlot(0) >= floor.Known0);
        Assert.Equal(h.Replicas[Q].ExecutedThrough(0), rebuilt.ExecutedThrough(0));
        Assert.True(rebuilt.CommittedPrefix(0) >= rebuilt.ExecutedThrough(0));
        Assert.Contains("rebuilt from floor", rebuilt.Describe(), StringComparison.Ordinal);

        // An uncommitted entry at the floor: no answer, no state. Above it: an ordinary vote.
        var fx = new List<Effect<int>>();
        rebuilt.Start(h.Now, fx);
        var value = new EntryValue<int>(false, floor.Known1, [new Command<int>(new CommandId(9, 1), 0)]);
        var at = floor.Known0 + 0;
        fx.Clear();
        rebuilt.Handle(Q, new Accept<int>(0, at, new Ballot(floor.MaxRound + 1, Q), value), h.Now, fx);
        if (rebuilt.InspectSlot(0, at).Status != SlotStatus.Committed)
        {
            Assert.Empty(fx.OfType<PersistEffect<int>>());
            Assert.DoesNotContain(fx.OfType<SendEffect<int>>(), s => s.Message is AcceptReply<int>);
        }

        fx.Clear();
        rebuilt.Handle(Q, new Accept<int>(0, floor.Known0 + 5, new Ballot(floor.MaxRound + 1, Q), value), h.Now, fx);
        Assert.Contains(fx.OfType<SendEffect<int>>(), s => s.Message is AcceptReply<int>);

        // Its own ballots start above the floor's round (a recovery it starts uses a fresh one).
        fx.Clear();
        rebuilt.StartRecovery(1, floor.Known1 + 3, h.Now, fx);
        var prepare = fx.OfType<BroadcastEffect<int>>().Select(b => b.Message).OfType<Prepare<int>>().Single();
        Assert.True(prepare.Ballot.Round > floor.MaxRound);

        // A restart from its records, or from a checkpoint of it, keeps the floor.
        var persisted = records.Concat(fx.OfType<PersistEffect<int>>().Select(p => p.Record)).ToList();
        Assert.Equal(floor, new Replica<int>(h.Options, P, new Random(2), persisted).Floor);
        var checkpoint = rebuilt.TakeCheckpoint();
        Assert.Contains(checkpoint.Records, r => r is RebuildRecord<int>);
        var again = new Replica<int>(h.Options, P, new Random(3), checkpoint.Records);
        Assert.Equal(floor, again.Floor);
        Assert.False(again.IsActivePilot(0));
    }
}
