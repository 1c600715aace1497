using System.Collections.Immutable;
using CsCheck;

namespace SpecLog.FixAnte.Tests;

public sealed class ShardCoreTests
{
    private static FixAnteOptions Options(int tOrdMicros = 1000, double factor = 1.5, OrderingMode mode = OrderingMode.FixAnte) => new()
    {
        CutsPerWindow = 10,
        OrderingInterval = TimeSpan.FromMicroseconds(tOrdMicros),
        NoOpDeadlineFactor = factor,
        Mode = mode,
        // These tests pin Belfast's rules: the deadline after the last report, and a report for every completed cut.
        NoOpFill = NoOpFillPolicy.AfterLastReport,
        ReportSpacingFactor = 0,
    };

    private static ShardCore Core(int shard, FixAnteOptions options, params WindowConfig[] windows)
    {
        var core = new ShardCore(shard, options);
        core.OnCommitted(0, windows, 0);
        return core;
    }

    [Theory]
    [InlineData(1000, 1.5)]
    [InlineData(400, 2.5)]
    [InlineData(2000, 1.0)]
    public void Deadline_no_ops_come_after_the_deadline_and_finish_exactly_the_current_cut(int tOrdMicros, double factor)
    {
        var deadline = (long)(tOrdMicros * factor);
        var w0 = new WindowConfig(0, 0, 0, 10, [2, 3]);
        var core = Core(1, Options(tOrdMicros, factor), w0);
        Assert.True(core.ReportDue(0));
        var first = core.MakeReport(0);
        Assert.Equal(0, core.LastReportedCut);
        Assert.Equal(0, first.DurableSlots);

        Assert.Equal(0, core.AssignRecord());
        core.OnDurable(1, 1);
        Assert.Equal(0, core.NoOpsForDeadline(1));
        Assert.Equal(0, core.NoOpsForDeadline(deadline - 1));
        Assert.Equal(3 - 1, core.NoOpsForDeadline(deadline));
        Assert.Equal(3 - 1, core.NoOpsForDeadline(deadline + 7)); // a query, not a state change
        Assert.Equal(1, core.AssignNoOp(2));
        Assert.Equal(2, core.NoOpSlots);
        Assert.Equal(0, core.NoOpsForDeadline(deadline + 10)); // the fill on its way completes the cut
        Assert.False(core.ReportDue(deadline + 10));
        core.OnDurable(3, 1);
        Assert.True(core.ReportDue(deadline + 20));
        var t1 = deadline + 20;
        var report = core.MakeReport(t1);
        Assert.Equal((3L, 1L, 1L), (report.DurableSlots, report.RealRecords, core.LastReportedCut));
        Assert.Equal(0, core.NoOpsForDeadline(t1 + deadline - 1));
        Assert.Equal(3, core.NoOpsForDeadline(t1 + deadline)); // an empty cut is filled whole
        Assert.Equal(3, core.NoOpsForDeadline(t1 + 100 * deadline)); // but never more than one cut per deadline
    }

    [Fact]
    public void No_deadline_no_ops_while_records_on_their_way_complete_a_cut()
    {
        var core = Core(0, Options(), new WindowConfig(0, 0, 0, 10, [2, 3]));
        core.MakeReport(0);
        core.AssignRecord();
        core.AssignRecord(); // cut 0 complete once durable
        core.AssignRecord(); // one slot into cut 1
        Assert.Equal(0, core.NoOpsForDeadline(1_000_000));
        core.OnDurable(3, 3);
        core.MakeReport(1_000_000);
        Assert.Equal(1, core.LastReportedCut);
        Assert.Equal(1, core.NoOpsForDeadline(2_000_000)); // now fill cut 1's missing slot
    }

    [Fact]
    public void No_deadline_no_ops_beyond_the_known_windows()
    {
        var w0 = new WindowConfig(0, 0, 0, 2, [1, 2]);
        var core = Core(1, Options(), w0);
        var now = 0L;
        core.MakeReport(now);
        for (var cut = 0; cut < 2; cut++)
        {
            now += 10_000;
            var n = core.NoOpsForDeadline(now);
            Assert.Equal(2, n);
            core.AssignNoOp(n);
            core.OnDurable(core.AssignedSlots, 0);
            Assert.True(core.ReportDue(now));
            core.MakeReport(now);
        }

        Assert.Equal(w0.EndCut, core.LastReportedCut);
        Assert.Equal(0, core.NoOpsForDeadline(now + 1_000_000_000));

        // Window 1 gives shard 1 no slot, window 2 gives it 4 per cut: the next fill is window 2's first cut.
        var w1 = w0.Next([3, 0], 3);
        var w2 = w1.Next([1, 4], 2);
        Assert.True(core.OnCommitted(0, [w0, w1, w2], now));
        Assert.Equal(0, core.NoOpsForDeadline(now + 1_000_000_000)); // window 1 completed by itself: report that first
        Assert.True(core.ReportDue(now + 1));
        core.MakeReport(now + 1);
        Assert.Equal(w1.EndCut, core.LastReportedCut);
        Assert.Equal(0, core.NoOpsForDeadline(now + 1 + 1499));
        Assert.Equal(4, core.NoOpsForDeadline(now + 1 + 1500));
    }

    [Fact]
    public void Scalog_mode_never_fills_no_ops()
    {
        var core = Core(0, Options(mode: OrderingMode.Scalog), new WindowConfig(0, 0, 0, 1, [3, 1]));
        core.AssignRecord();
        core.OnDurable(1, 1);
        Assert.Equal(0, core.NoOpsForDeadline(1_000_000_000));
        Assert.Equal(0, core.NoOpsForLagFix(10));
    }

    [Fact]
    public void Lag_fix_fills_up_to_the_target_cut_in_one_call_and_is_acknowledged_once_durable()
    {
        var w0 = new WindowConfig(0, 0, 0, 10, [1, 2]);
        var core = Core(1, Options(), w0);
        core.MakeReport(0);
        for (var i = 0; i < 3; i++)
        {
            core.AssignRecord();
        }

        core.OnDurable(3, 3);
        core.MakeReport(1);
        var n = core.NoOpsForLagFix(4);
        Assert.Equal(4 * 2 - 3, n);
        Assert.Equal(1, core.LagFixes);
        Assert.Equal(3, core.AssignNoOp(n));
        Assert.False(core.MakeReport(2).FixedLag); // not durable yet
        core.OnDurable(8, 3);
        Assert.True(core.ReportDue(3));
        var ack = core.MakeReport(3);
        Assert.True(ack.FixedLag);
        Assert.Equal(4, core.LastReportedCut);
        Assert.False(core.MakeReport(4).FixedLag); // acknowledged once

        Assert.Equal(0, core.NoOpsForLagFix(4)); // already there: nothing to fill, but the signal is still answered
        Assert.Equal(0, core.NoOpsForLagFix(2));
        Assert.Equal(1, core.LagFixes);
        Assert.True(core.ReportDue(5));
        Assert.True(core.MakeReport(5).FixedLag);
        Assert.False(core.MakeReport(5).FixedLag);

        // A target beyond the known windows is clamped to them.
        var fill = core.NoOpsForLagFix(1_000);
        Assert.Equal(w0.SlotsOf(1) - 8, fill);
        core.AssignNoOp(fill);
        core.OnDurable(core.AssignedSlots, 3);
        Assert.Equal(w0.EndCut, core.History.CompletedCut(1, core.DurableSlots));
        Assert.True(core.MakeReport(6).FixedLag);
    }

    [Fact]
    public void Report_is_event_driven_in_fix_ante_mode()
    {
        var core = new ShardCore(0, Options());
        Assert.True(core.ReportDue(0)); // nothing known yet: ask for the windows
        var hello = core.MakeReport(0);
        Assert.Equal(0, hello.KnownWindows);
        Assert.False(core.ReportDue(100));
        core.OnCommitted(0, [new WindowConfig(0, 0, 0, 10, [2, 1])], 200);
        Assert.False(core.ReportDue(200)); // learning windows completes no cut of shard 0
        core.AssignRecord();
        core.OnDurable(1, 1);
        Assert.False(core.ReportDue(1_000)); // partial cut: nothing to report
        core.AssignRecord();
        Assert.False(core.ReportDue(1_001)); // complete but not durable
        core.OnDurable(2, 2);
        Assert.True(core.ReportDue(1_002)); // a new cut completed: report at once
        var r = core.MakeReport(1_002);
        Assert.Equal((1, 2L, 2L, 1L, 1_002L), (r.KnownWindows, r.DurableSlots, r.RealRecords, core.LastReportedCut, r.TimestampMicros));
        Assert.False(core.ReportDue(1_003));
        Assert.True(core.ReportDue(1_002 + 3_600_000_000)); // silence from the ordering layer: retransmit eventually
        Assert.Equal(2, core.ReportsSent);
        Assert.Equal(1, core.ReportSeq);
    }

    [Fact]
    public void Report_is_periodic_in_scalog_mode()
    {
        var core = new ShardCore(0, Options(tOrdMicros: 700, mode: OrderingMode.Scalog));
        Assert.True(core.ReportDue(0));
        core.MakeReport(0);
        Assert.False(core.ReportDue(699));
        Assert.True(core.ReportDue(700));
        core.MakeReport(750);
        Assert.False(core.ReportDue(1_449));
        Assert.True(core.ReportDue(1_450));
    }

    [Fact]
    public void Deliverable_slots_stop_at_the_known_windows()
    {
        var w0 = new WindowConfig(0, 0, 0, 2, [1, 2]);
        var core = Core(0, Options(), w0);
        for (var i = 0; i < 7; i++)
        {
            core.AssignRecord();
        }

        Assert.Equal(0, core.DeliverableSlots);
        core.OnDurable(5, 5);
        Assert.Equal(2, core.DeliverableSlots); // shard 0 owns 2 slots in window 0
        core.OnCommitted(0, [w0, w0.Next([3, 1])], 1);
        Assert.Equal(5, core.DeliverableSlots); // 2 + 6 known, 5 durable
        core.OnDurable(7, 7);
        Assert.Equal(7, core.DeliverableSlots);
    }

    [Fact]
    public void Scalog_delivers_only_committed_slots()
    {
        var core = new ShardCore(1, Options(mode: OrderingMode.Scalog));
        for (var i = 0; i < 5; i++)
        {
            core.AssignRecord();
        }

        core.OnDurable(5, 5);
        Assert.Equal(0, core.DeliverableSlots);
        var c0 = new WindowConfig(0, 0, 0, 1, [4, 3]);
        core.OnCommitted(1, [c0], 10);
        Assert.Equal(3, core.CommittedSlots);
        Assert.Equal(3, core.DeliverableSlots);
        core.OnCommitted(2, [c0, c0.Next([0, 4], 1)], 20);
        Assert.Equal(7, core.CommittedSlots);
        Assert.Equal(5, core.DeliverableSlots); // committed beyond durable? never deliver what is not durable here
        Assert.Equal(7 + 4, core.CommittedGsn);
    }

    [Fact]
    public void OnCommitted_learns_windows_and_tracks_committed_slots()
    {
        var windows = NaiveLayout.Chain([(3, [1, 2, 0]), (2, [0, 5]), (4, [2, 2, 2])]);
        var oracle = NaiveLayout.OfConfigs(windows);
        var core = new ShardCore(1, Options());
        Assert.True(core.OnCommitted(0, windows.Take(1), 0));
        Assert.False(core.OnCommitted(1, windows.Take(1), 1));
        Assert.Equal(oracle.SlotsBeforeCut(1, 1), core.CommittedSlots);
        Assert.Equal(oracle.GsnOfCut(1), core.CommittedGsn);
        Assert.False(core.OnCommitted(7, windows.Take(1), 2)); // beyond the known windows: clamped to them
        Assert.Equal(3, core.CommittedCut);
        Assert.True(core.OnCommitted(4, windows, 3));
        Assert.Equal(4, core.CommittedCut);
        Assert.Equal(oracle.SlotsBeforeCut(1, 4), core.CommittedSlots);
        Assert.False(core.OnCommitted(2, windows, 4)); // late notice: nothing goes backwards
        Assert.Equal(4, core.CommittedCut);
        Assert.Equal(oracle.SlotsBeforeCut(1, 4), core.CommittedSlots);
        for (var c = 5L; c <= oracle.TotalCuts; c++)
        {
            core.OnCommitted(c, [], c);
            Assert.Equal(oracle.SlotsBeforeCut(1, c), core.CommittedSlots);
            Assert.Equal(oracle.GsnOfCut(c), core.CommittedGsn);
        }
    }

    [Fact]
    public void Constructor_and_assignment_validate_input()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ShardCore(-1, Options()));
        Assert.Throws<ArgumentNullException>(() => new ShardCore(0, null!));
        Assert.Throws<ArgumentException>(() => new ShardCore(0, new FixAnteOptions { CutsPerWindow = 1 }));
        var core = new ShardCore(0, Options());
        Assert.Throws<ArgumentOutOfRangeException>(() => core.AssignNoOp(0));
        core.Recover(10, 7, 3, NaiveLayout.Chain([(2, [5])]));
        Assert.Equal((10L, 10L, 7L, 3L), (core.AssignedSlots, core.DurableSlots, core.DurableRecords, core.NoOpSlots));
        Assert.Equal(10, core.AssignRecord());
        core.OnDurable(9, 6); // stale durability notice does not go backwards
        Assert.Equal((10L, 7L), (core.DurableSlots, core.DurableRecords));
    }

    [Fact]
    public void Recovered_shard_continues_report_numbers_above_the_given_floor_and_the_sequencer_accepts_them()
    {
        var windows = NaiveLayout.Chain([(4, [1, 1])]);
        var seq = new SequencerState(new FixAnteOptions { CutsPerWindow = 4 }, 2, windows);
        var output = new SequencerOutput();
        seq.Apply(new ShardReport(0, 41, 1, 1, 10, 1, false), output); // an earlier incarnation got to seq 41

        var core = new ShardCore(0, new FixAnteOptions { CutsPerWindow = 4 });
        core.Recover(2, 2, 0, windows, firstReportSeq: 1_000);
        Assert.Equal(2, core.AssignRecord());
        core.OnDurable(3, 3);
        var report = core.MakeReport(20);
        Assert.Equal(1_000, report.ReportSeq);
        Assert.Equal(1_001, core.MakeReport(21).ReportSeq);
        output.Clear();
        seq.Apply(report, output);
        Assert.False(output.Duplicate);
        Assert.Equal(3, seq.DurableSlotsOf(0));

        var fresh = new ShardCore(1, new FixAnteOptions { CutsPerWindow = 4 });
        fresh.Recover(0, 0, 0, windows);
        Assert.Equal(0, fresh.MakeReport(0).ReportSeq); // default: numbering starts at 0
    }

    // ---- Random operation sequences ------------------------------------------------------------------------------

    public readonly record struct Op(int Kind, int A, int B)
    {
        public override string ToString() => $"{Kind}:{A}:{B}";
    }

    private static readonly Gen<(int Shard, int TOrd, List<(int W, int[] Quotas)> Windows, List<Op> Ops)> GenRun =
        Gen.Select(Gen.Int[0, 2], Gen.Int[200, 2000], Gens.Windows, Gen.Select(Gen.Int[0, 8], Gen.Int[0, 20], Gen.Int[0, 3000]).Select(t => new Op(t.Item1, t.Item2, t.Item3)).List[1, 200]);

    [Fact]
    public void Random_operation_sequences_keep_the_shard_invariants()
    {
        GenRun.Sample(run =>
        {
            var options = Options(run.TOrd, 1.5);
            var deadline = (long)(run.TOrd * 1.5);
            var all = NaiveLayout.Chain(run.Windows);
            var core = new ShardCore(run.Shard, options);
            var known = 0;
            var now = 0L;
            var lastReport = long.MinValue / 4;
            var lastReportedCut = -1L;
            var records = 0L;
            var recordsAssigned = new List<bool>(); // per slot: real record?
            long? lagFillEnd = null;
            var lastReportWaiting = false;
            var idleSince = long.MinValue / 4; // when the shard's last uncommitted record got committed
            var expectedSeq = -1L;

            for (var i = 0; i < run.Ops.Count; i++)
            {
                var op = run.Ops[i];
                var at = i;
                var layout = NaiveLayout.OfConfigs(all.Take(known));
                switch (op.Kind)
                {
                    case 0:
                    case 1:
                        for (var k = 0; k < op.A % 6; k++)
                        {
                            Expect.Equal((long)recordsAssigned.Count, core.AssignRecord(), () => $"op {at}: slot handed out");
                            recordsAssigned.Add(true);
                        }

                        break;
                    case 2:
                    {
                        // Some prefix of what was assigned becomes durable.
                        var target = core.DurableSlots + (core.AssignedSlots - core.DurableSlots) * op.A / 20;
                        core.OnDurable(target, recordsAssigned.Take((int)target).Count(r => r));
                        records = core.DurableRecords;
                        break;
                    }

                    case 3:
                        now += op.B;
                        break;
                    case 4:
                    {
                        var n = core.NoOpsForDeadline(now);
                        var cut = layout.CompletedCut(run.Shard, core.AssignedSlots);
                        var due = known > 0 && now - lastReport >= deadline && cut <= lastReportedCut && cut < layout.TotalCuts;
                        var expected = due ? layout.SlotsBeforeCut(run.Shard, cut + 1) - core.AssignedSlots : 0;
                        Expect.Equal(expected, n, () => $"op {at}: NoOpsForDeadline (now {now}, last report {lastReport}, cut {cut}, reported {lastReportedCut}, known cuts {layout.TotalCuts})");
                        if (n > 0)
                        {
                            core.AssignNoOp(n);
                            recordsAssigned.AddRange(Enumerable.Repeat(false, (int)n));
                            // The fill completes the current cut (and any following cuts where this shard owns no slot), nothing more.
                            Expect.Equal(layout.SlotsBeforeCut(run.Shard, cut + 1), core.AssignedSlots, () => $"op {at}: deadline fill ends at the end of cut {cut}");
                            Expect.True(layout.CompletedCut(run.Shard, core.AssignedSlots) > cut, () => $"op {at}: deadline fill does not complete cut {cut}");
                        }

                        break;
                    }

                    case 5:
                    {
                        var target = op.A;
                        var n = core.NoOpsForLagFix(target);
                        var expected = known == 0 ? 0 : Math.Max(0, layout.SlotsBeforeCut(run.Shard, Math.Min(target, layout.TotalCuts)) - core.AssignedSlots);
                        Expect.Equal(expected, n, () => $"op {at}: NoOpsForLagFix({target})");
                        if (known > 0)
                        {
                            // An answer is owed once every slot below the target is durable, filled now or already assigned.
                            var answerAt = layout.SlotsBeforeCut(run.Shard, Math.Min(target, layout.TotalCuts));
                            lagFillEnd = Math.Max(lagFillEnd ?? 0, answerAt);
                        }

                        if (n > 0)
                        {
                            core.AssignNoOp(n);
                            recordsAssigned.AddRange(Enumerable.Repeat(false, (int)n));
                        }

                        break;
                    }

                    case 6:
                        if (known < all.Count && op.A % 2 == 0)
                        {
                            known++;
                        }

                    {
                        var waitingBefore = recordsAssigned.Skip((int)Math.Min(core.CommittedSlots, recordsAssigned.Count)).Any(isRecord => isRecord);
                        core.OnCommitted(Math.Min(op.A, all.Take(known).LastOrDefault()?.EndCut ?? 0), all.Take(known), now);
                        layout = NaiveLayout.OfConfigs(all.Take(known));
                        if (waitingBefore && !recordsAssigned.Skip((int)Math.Min(core.CommittedSlots, recordsAssigned.Count)).Any(isRecord => isRecord))
                        {
                            idleSince = now;
                        }

                        break;
                    }
                    default:
                    {
                        var newCut = known > 0 && layout.CompletedCut(run.Shard, core.DurableSlots) > lastReportedCut;
                        var answerOwed = lagFillEnd is { } owed && owed <= core.DurableSlots;
                        var uncommitted = recordsAssigned.Skip((int)Math.Min(core.CommittedSlots, recordsAssigned.Count)).Any(isRecord => isRecord);
                        // The end of waiting is news once the shard stayed without uncommitted records for a cut interval.
                        var stoppedWaiting = lastReportWaiting && !uncommitted && now - idleSince >= core.CutIntervalMicros;
                        var due = core.ReportDue(now);
                        Expect.True(!newCut || due, () => $"op {at}: a new cut completed but no report due");
                        Expect.True(!answerOwed || due, () => $"op {at}: a lag-fix answer is owed but no report due");
                        Expect.True(!stoppedWaiting || due || known == 0, () => $"op {at}: the shard stopped waiting but no report is due");
                        Expect.True(newCut || answerOwed || stoppedWaiting || now - lastReport >= deadline || !due || known == 0, () => $"op {at}: report due without a new cut, lag-fix answer or end of waiting shortly after the last report");
                        if (due)
                        {
                            var r = core.MakeReport(now);
                            expectedSeq++;
                            Expect.Equal(expectedSeq, r.ReportSeq, () => $"op {at}: ReportSeq");
                            Expect.Equal((run.Shard, core.DurableSlots, records, now, known), (r.Shard, r.DurableSlots, r.RealRecords, r.TimestampMicros, r.KnownWindows), () => $"op {at}: report content");
                            Expect.True(!r.FixedLag || (lagFillEnd is { } end && end <= r.DurableSlots), () => $"op {at}: FixedLag before the lag-fix fill was durable");
                            Expect.Equal(answerOwed, r.FixedLag, () => $"op {at}: FixedLag exactly when a lag-fix answer is owed");
                            Expect.Equal(uncommitted, r.Waiting, () => $"op {at}: Waiting exactly while a record is uncommitted");
                            lastReportWaiting = r.Waiting;
                            if (r.FixedLag)
                            {
                                lagFillEnd = null;
                            }

                            lastReport = now;
                            lastReportedCut = known == 0 ? 0 : layout.CompletedCut(run.Shard, core.DurableSlots);
                            Expect.Equal(lastReportedCut, core.LastReportedCut, () => $"op {at}: LastReportedCut");
                        }

                        break;
                    }
                }

                // Invariants after every operation.
                layout = NaiveLayout.OfConfigs(all.Take(known));
                Expect.True(core.DurableSlots <= core.AssignedSlots, () => $"op {at}: durable beyond assigned");
                Expect.Equal(Math.Min(core.DurableSlots, layout.Slots(run.Shard)), core.DeliverableSlots, () => $"op {at}: DeliverableSlots");
                Expect.Equal(layout.SlotsBeforeCut(run.Shard, core.CommittedCut), core.CommittedSlots, () => $"op {at}: CommittedSlots");
                Expect.True(core.CommittedCut <= layout.TotalCuts, () => $"op {at}: committed cut beyond the known windows");
                Expect.Equal((long)recordsAssigned.Count(r => !r), core.NoOpSlots, () => $"op {at}: NoOpSlots");
            }
        }, iter: 300, print: r => $"shard={r.Shard} tOrd={r.TOrd} windows={Gens.Print(r.Windows)} ops=[{string.Join(' ', r.Ops)}]");
    }
}
