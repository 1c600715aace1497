using CsCheck;

namespace SpecLog.FixAnte.Tests;

public sealed class SequencerScalogTests
{
    private static FixAnteOptions Scalog() => new() { Mode = OrderingMode.Scalog, OrderingInterval = TimeSpan.FromMilliseconds(1) };

    private static readonly Gen<(int Shards, List<(int Shard, int Inc, int Kind)> Steps)> GenScenario =
        Gen.Select(Gen.Int[1, 4], Gen.Select(Gen.Int[0, 3], Gen.OneOf(Gen.Int[0, 3], Gen.Int[0, 12]), Gen.Int[0, 9]).List[1, 120]);

    private static string Print((int Shards, List<(int Shard, int Inc, int Kind)> Steps) t) =>
        $"shards={t.Shards} steps=[{string.Join(' ', t.Steps.Select(s => $"({s.Shard},+{s.Inc},k{s.Kind})"))}]";

    [Fact]
    public void Cuts_follow_full_report_rounds_take_the_increments_and_tile_the_gsns()
    {
        GenScenario.Sample(t =>
        {
            var n = t.Shards;
            var seq = new SequencerState(Scalog(), n);
            var twin = new SequencerState(Scalog(), n);
            var init = new SequencerOutput();
            seq.Initialize(init);
            twin.Initialize(new SequencerOutput());
            Assert.Empty(init.NewWindows);
            Assert.Equal(0, seq.CommittedGsn);

            var durable = new long[n];
            var based = new long[n];          // slots already placed in cuts
            var reported = new bool[n];       // reported since the previous cut
            var seqNo = Enumerable.Repeat(-1L, n).ToArray();
            var cuts = new List<(int W, IReadOnlyList<int> Quotas)>();

            void Apply(ShardReport report, bool stale, int at)
            {
                var countBefore = seq.History.Count;
                var committedBefore = seq.CommittedCut;
                var o = new SequencerOutput();
                seq.Apply(report, o);
                var o2 = new SequencerOutput();
                twin.Apply(report, o2);
                Expect.Equal(o.NewWindows.Count, o2.NewWindows.Count, () => $"step {at}: twin output");
                Expect.Equal(stale, o.Duplicate, () => $"step {at}: Duplicate for {report}");
                if (stale)
                {
                    Expect.Equal(countBefore, seq.History.Count, () => $"step {at}: stale report made a cut");
                    Expect.Equal(committedBefore, seq.CommittedCut, () => $"step {at}: stale report moved the committed cut");
                    return;
                }

                reported[report.Shard] = true;
                if (seq.History.Count == countBefore)
                {
                    Expect.True(!o.CommitAdvanced && o.NewWindows.Count == 0, () => $"step {at}: commit advanced without a cut");
                    return;
                }

                Expect.Equal(countBefore + 1, seq.History.Count, () => $"step {at}: cuts made by one report");
                Expect.True(reported.All(r => r), () => $"step {at}: cut made before every shard reported since the previous cut: [{string.Join(',', reported)}]");
                var cut = Assert.Single(o.NewWindows);
                Expect.Equal(1, cut.CutsPerWindow, () => $"step {at}: a Scalog cut is a one-cut window");
                var increments = Enumerable.Range(0, n).Select(x => (int)(durable[x] - based[x])).ToArray();
                Expect.Equal(string.Join(',', increments), string.Join(',', cut.Quotas), () => $"step {at}: cut quotas vs per-shard increments");
                Expect.True(increments.Sum() > 0, () => $"step {at}: empty cut");
                Expect.True(o.CommitAdvanced, () => $"step {at}: CommitAdvanced");
                Expect.Equal(seq.History.KnownEndCut, seq.CommittedCut, () => $"step {at}: CommittedCut jumps to the cut end");
                Expect.Equal(seq.History.KnownEndGsn, seq.CommittedGsn, () => $"step {at}: CommittedGsn");
                cuts.Add((1, increments));
                Array.Copy(durable, based, n);
                Array.Clear(reported);
            }

            for (var i = 0; i < t.Steps.Count; i++)
            {
                var (pick, inc, kind) = t.Steps[i];
                var s = pick % n;
                if (kind == 0 && seqNo[s] >= 0)
                {
                    Apply(new ShardReport(s, seqNo[s] - inc % 2, durable[s] + 50, 0, 0, 0, false), true, i);
                    continue;
                }

                durable[s] += inc;
                Apply(new ShardReport(s, ++seqNo[s], durable[s], durable[s], i, 0, false), false, i);
            }

            // Two more full rounds commit everything reported.
            for (var round = 0; round < 2; round++)
            {
                for (var s = 0; s < n; s++)
                {
                    Apply(new ShardReport(s, ++seqNo[s], durable[s], durable[s], 0, 0, false), false, -1);
                }
            }

            Assert.Equal(durable.Sum(), seq.CommittedGsn);

            // Every reported slot has a GSN; together they tile [0, CommittedGsn) exactly like the naive layout of the increments.
            var oracle = NaiveLayout.Of(cuts);
            var owned = new int[seq.CommittedGsn];
            for (var s = 0; s < n; s++)
            {
                Assert.Equal(durable[s], seq.History.KnownSlots(s));
                for (var k = 0L; k < durable[s]; k++)
                {
                    var gsn = seq.History.GsnOfSlot(s, k);
                    var (shard, slot) = (s, k);
                    Expect.Equal(oracle.GsnOfSlot(s, k), gsn, () => $"GSN of shard {shard} slot {slot}");
                    owned[gsn]++;
                }
            }

            Assert.All(owned, c => Assert.Equal(1, c));
            Assert.Equal(
                string.Join('\n', seq.History.Windows.Select(w => $"{w}")),
                string.Join('\n', twin.History.Windows.Select(w => $"{w}")));
        }, iter: 300, print: Print);
    }

    [Fact]
    public void A_cut_waits_for_every_shard_and_takes_what_each_holds()
    {
        var d = new SequencerDriver(Scalog(), 2);
        Assert.Empty(d.InitOutput.NewWindows);
        Assert.Empty(d.Report(0, 3).NewWindows);
        Assert.Empty(d.Report(0, 5).NewWindows);
        var o = d.Report(1, 2);
        var cut = Assert.Single(o.NewWindows);
        Assert.Equal([5, 2], cut.Quotas);
        Assert.Equal(1, d.State.CommittedCut);
        Assert.Equal(7, d.State.CommittedGsn);
        Assert.Empty(d.Report(1, 4).NewWindows);
        cut = Assert.Single(d.Report(0, 5).NewWindows); // shard 0 brought nothing new: quota 0
        Assert.Equal([0, 2], cut.Quotas);
        Assert.Equal(2, d.State.CommittedCut);
        Assert.Equal(9, d.State.CommittedGsn);
        Assert.Equal(7, d.State.History.GsnOfSlot(1, 2));
        Assert.Equal(8, d.State.History.GsnOfSlot(1, 3));
        Assert.Empty(d.Report(0, 5).LagFixes);
    }

    [Fact]
    public void A_recovered_scalog_sequencer_continues_the_numbering()
    {
        var recovered = NaiveLayout.Chain([(1, [2, 1]), (1, [0, 3])]);
        var d = new SequencerDriver(Scalog(), 2, recovered);
        Assert.Empty(d.InitOutput.NewWindows);
        d.Report(0, 2 + 4); // shard 0 held 2 slots in cuts, now 6
        var cut = Assert.Single(d.Report(1, 1 + 3).NewWindows);
        Assert.Equal([4, 0], cut.Quotas);
        Assert.Equal(2, cut.Window);
        Assert.Equal(6, cut.StartGsn);
        Assert.Equal(10, d.State.CommittedGsn);
        Assert.Equal(6, d.State.History.GsnOfSlot(0, 2));
    }
}
