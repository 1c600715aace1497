namespace SpecLog.FixAnte.Tests;

/// <summary>
/// Elasticity: shards join and leave at window boundaries. A join gives the new shard its first quota in the next
/// window the sequencer decides, a leave takes the shard's quota away from the next window on, and neither changes a
/// window decided before, so nothing delivered speculatively moves.
/// </summary>
public sealed class ShardSetChangeTests(ITestOutputHelper output)
{
    private static readonly (long, ShardControl, int)[] Changes =
    [
        (30_000, ShardControl.Join, 4),
        (55_000, ShardControl.Leave, 1),
        (80_000, ShardControl.Join, 5),
        (105_000, ShardControl.Leave, 4),
    ];

    public static TheoryData<int> Seeds => new(Enumerable.Range(1, 6));

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Shards_join_and_leave_under_load_without_mis_speculation(int seed)
    {
        var sim = new Simulation(seed, OrderingMode.FixAnte, new SimulationLoad { ShardChanges = Changes });
        output.WriteLine(sim.Run());
        Assert.Equal(6, sim.Sequencer.ShardCount);
        Assert.Equal([1, 4], sim.Sequencer.History.Last!.Departed);
        Assert.Equal(2, sim.Sequencer.Joins);
        Assert.Equal(2, sim.Sequencer.Leaves);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Shards_join_and_leave_with_interleaved_cuts_and_the_cut_clock(int seed)
    {
        var load = new SimulationLoad
        {
            ShardChanges = Changes,
            Configure = o => { o.CutLayout = CutLayout.Interleaved; o.NoOpFill = NoOpFillPolicy.CutClock; },
        };
        var sim = new Simulation(seed, OrderingMode.FixAnte, load);
        output.WriteLine(sim.Run());
        Assert.Equal([1, 4], sim.Sequencer.History.Last!.Departed);
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Scalog_baseline_takes_joins_at_once_and_leaves_at_the_next_cut(int seed)
    {
        var sim = new Simulation(seed, OrderingMode.Scalog, new SimulationLoad { ShardChanges = Changes });
        output.WriteLine(sim.Run());
        Assert.Equal(6, sim.Sequencer.ShardCount);
        Assert.Equal([1, 4], sim.Sequencer.History.Last!.Departed);
    }

    [Fact]
    public void A_join_is_decided_with_the_next_window_at_once_when_only_the_current_one_is_known()
    {
        var state = new SequencerState(SequencerDriver.Options(w: 4), 2);
        var o = new SequencerOutput();
        state.Initialize(o);
        Assert.False(state.AnyWaiting);

        o.Clear();
        state.Apply(ShardReport.ForControl(ShardControl.Join, 2, 1), o);
        Assert.Null(o.ControlRefused);
        Assert.Equal(3, state.ShardCount);
        var next = Assert.Single(o.NewWindows); // no need to wait for the middle of window 0
        Assert.Equal([1, 1, 1], next.Quotas);
        Assert.False(state.IsJoining(2));
        Assert.False(state.AnyWaiting);
        Assert.Equal(0, state.History[0].QuotaOf(2)); // window 0, decided before, is unchanged
        Assert.Equal(next.FirstCut, state.CompletedCutOf(2)); // no slot in window 0: it holds nothing back there
    }

    [Fact]
    public void A_join_when_the_next_window_is_decided_already_waits_for_the_one_after_and_keeps_the_cuts_moving()
    {
        var state = new SequencerState(SequencerDriver.Options(w: 4), 2);
        var o = new SequencerOutput();
        state.Initialize(o);
        state.Apply(new ShardReport(0, 0, 2, 0, 1, 1, false), o);
        state.Apply(new ShardReport(1, 0, 2, 0, 1, 1, false), o);
        Assert.Equal(2, state.History.Count); // window 1 decided at the middle of window 0

        o.Clear();
        state.Apply(ShardReport.ForControl(ShardControl.Join, 2, 1), o);
        Assert.Empty(o.NewWindows);
        Assert.True(state.IsJoining(2));
        Assert.True(state.AnyWaiting); // an idle log must move its cuts for the join to be decided
        Assert.True(o.WaitingChanged);

        // Shards 0 and 1 reach window 1 (cut 4): window 2 is decided with shard 2.
        o.Clear();
        state.Apply(new ShardReport(0, 1, 4, 0, 2, 2, false), o);
        state.Apply(new ShardReport(1, 1, 4, 0, 2, 2, false), o);
        var next = Assert.Single(o.NewWindows);
        Assert.Equal(2, next.Window);
        Assert.Equal([1, 1, 1], next.Quotas);
        Assert.False(state.AnyWaiting);
        Assert.True(o.WaitingChanged);
    }

    [Fact]
    public void A_leave_empties_the_shard_from_the_next_window_on_and_its_filled_slots_complete_every_later_cut()
    {
        var state = new SequencerState(SequencerDriver.Options(w: 4), 3);
        var o = new SequencerOutput();
        state.Initialize(o);
        state.Apply(ShardReport.ForControl(ShardControl.Leave, 1, 7), o);
        Assert.True(state.IsLeaving(1));
        o.Clear();
        for (var s = 0; s < 3; s++)
        {
            state.Apply(new ShardReport(s, 0, 2, 2, 1, 1, false), o);
        }

        var next = Assert.Single(o.NewWindows);
        Assert.Equal(0, next.QuotaOf(1));
        Assert.Equal([1], next.Departed);
        Assert.True(state.IsDeparted(1));

        // Shard 1 fills its last two slots of window 0; the others go on without it, and it never holds a cut again.
        o.Clear();
        state.Apply(new ShardReport(1, 1, 4, 2, 2, 2, false), o);
        Assert.Equal(state.History.KnownEndCut, state.CompletedCutOf(1));
        for (var w = 0; w < 5; w++)
        {
            var last = state.History.Last!;
            o.Clear();
            state.Apply(new ShardReport(0, 10 + w, state.History.SlotsBeforeCut(0, last.EndCut), 0, 3 + w, state.History.Count, false), o);
            state.Apply(new ShardReport(2, 10 + w, state.History.SlotsBeforeCut(2, last.EndCut), 0, 3 + w, state.History.Count, false), o);
            Assert.True(state.History.Last!.HasDeparted(1));
            Assert.Equal(0, state.History.Last!.QuotaOf(1));
        }

        Assert.True(state.CommittedCut >= 5 * 4);
    }

    [Fact]
    public void Repeated_and_impossible_requests_change_nothing()
    {
        var state = new SequencerState(SequencerDriver.Options(w: 4), 2);
        var o = new SequencerOutput();
        state.Initialize(o);
        state.Apply(ShardReport.ForControl(ShardControl.Join, 2, 1), o);
        o.Clear();
        state.Apply(ShardReport.ForControl(ShardControl.Join, 2, 2), o); // the same join again
        Assert.Null(o.ControlRefused);
        Assert.Equal(3, state.ShardCount);
        Assert.Equal(1, state.Joins);

        state.Apply(ShardReport.ForControl(ShardControl.Join, 7, 3), o);
        Assert.Contains("next shard id is 3", o.ControlRefused);
        Assert.Equal(3, state.ShardCount);

        o.Clear();
        state.Apply(ShardReport.ForControl(ShardControl.Leave, 9, 4), o);
        Assert.Contains("shards 0 to 2", o.ControlRefused);

        o.Clear();
        state.Apply(ShardReport.ForControl(ShardControl.Leave, 0, 5), o);
        state.Apply(ShardReport.ForControl(ShardControl.Leave, 0, 6), o); // again: nothing more
        Assert.Null(o.ControlRefused);
        Assert.Equal(1, state.Leaves);
        state.Apply(ShardReport.ForControl(ShardControl.Leave, 1, 7), o);
        Assert.Null(o.ControlRefused);

        // Shard 2 is the last one left with slots to come: it cannot leave.
        state.Apply(ShardReport.ForControl(ShardControl.Leave, 2, 8), o);
        Assert.Contains("last shard", o.ControlRefused);
        Assert.False(state.IsLeaving(2));
    }

    [Fact]
    public void The_shard_set_is_recovered_from_the_windows_and_configured_shards_beyond_it_join()
    {
        var windows = new List<WindowConfig> { new(0, 0, 0, 4, [1, 1, 1]) };
        windows.Add(windows[0].Next([1, 0, 1, 1], departed: [1]));
        var recovered = new SequencerState(SequencerDriver.Options(w: 4), 2, windows);
        Assert.Equal(4, recovered.ShardCount); // the windows know four shards though two were configured
        Assert.True(recovered.IsDeparted(1));
        Assert.False(recovered.IsJoining(3));

        var grown = new SequencerState(SequencerDriver.Options(w: 4), 6, windows);
        Assert.Equal(6, grown.ShardCount);
        Assert.True(grown.IsJoining(4) && grown.IsJoining(5));
        Assert.True(grown.AnyWaiting);
    }

    [Fact]
    public void A_departed_shard_stops_counting_its_orphans_and_stops_reporting_once_its_slots_are_reported()
    {
        var options = SequencerDriver.Options(w: 4);
        var core = new ShardCore(1, options);
        var w0 = new WindowConfig(0, 0, 0, 4, [1, 1]);
        var w1 = w0.Next([1, 0], departed: [1]);
        core.Recover(0, 0, 0, [w0]);
        for (var i = 0; i < 6; i++)
        {
            core.AssignRecord(); // slots 0..5; shard 1 owns 4 slots in the whole log
        }

        core.OnDurable(6, 6, 10);
        core.OnCommitted(0, [w1], 10, othersWaiting: true);
        Assert.True(core.Departed);
        Assert.Equal(4, core.FinalSlots);
        Assert.True(core.HasUncommittedRecords);
        Assert.Equal(4, core.DeliverableSlots);

        Assert.True(core.ReportDue(20_000));
        var report = core.MakeReport(20_000);
        Assert.Equal(6, report.DurableSlots);

        // Its four slots are committed: the two records beyond them will never be, and it waits for nothing.
        // New windows still make its completed cut grow, but that is no news: no report, and no wake-up in the past.
        core.OnCommitted(w1.EndCut, [w1.Next([1, 0])], 30_000, othersWaiting: false);
        Assert.False(core.HasUncommittedRecords);
        if (core.ReportDue(40_000))
        {
            core.MakeReport(40_000); // at most the news that it stopped waiting
        }

        var w2 = w1.Next([1, 0]);
        core.OnCommitted(w1.EndCut + 4, [w2, w2.Next([1, 0])], 50_000, othersWaiting: true);
        Assert.True(core.History.CompletedCut(1, core.DurableSlots) > core.LastReportedCut);
        Assert.False(core.ReportDue(50_500));
        Assert.Equal(0, core.NoOpsForDeadline(50_500));
        core.OnCommitted(w1.EndCut + 4, [], 51_000, othersWaiting: false);
        Assert.False(core.Active); // nothing to wait for: no wake-ups
    }

    [Fact]
    public void A_window_names_only_departed_shards_without_quota_in_ascending_order()
    {
        var w = new WindowConfig(0, 0, 0, 4, [1, 0, 0, 2], departed: [1, 2]);
        Assert.True(w.HasDeparted(2));
        Assert.False(w.HasDeparted(0));
        Assert.Equal([1, 2], w.Next([1, 0, 0, 1]).Departed); // passed on
        Assert.Throws<ArgumentException>(() => new WindowConfig(0, 0, 0, 4, [1, 1], departed: [1]));
        Assert.Throws<ArgumentException>(() => new WindowConfig(0, 0, 0, 4, [1, 0, 0], departed: [2, 1]));
        Assert.Throws<ArgumentException>(() => new WindowConfig(0, 0, 0, 4, [1, 0], departed: [2]));
        Assert.Contains("departed [1,2]", w.ToString());
    }
}
