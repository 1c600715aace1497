using System.Collections.Immutable;

namespace SpecLog.FixAnte.Tests;

/// <summary>
/// Control traffic proportional to work: coalesced reports (at most one per report spacing, carrying every cut
/// completed since the previous one), the adaptive cut interval of low-rate windows, and the cut clock's aligned fills.
/// </summary>
public sealed class ControlTrafficTests
{
    private static WindowConfig Window(int w, params int[] quotas) => new(0, 0, 0, w, ImmutableArray.Create(quotas));

    private static ShardCore Core(FixAnteOptions options, params WindowConfig[] windows)
    {
        var core = new ShardCore(0, options);
        core.OnCommitted(0, windows, 0);
        return core;
    }

    [Fact]
    public void A_shard_completing_a_cut_every_100us_reports_once_per_spacing_and_each_report_carries_every_completed_cut()
    {
        var options = new FixAnteOptions { CutsPerWindow = 1000, OrderingInterval = TimeSpan.FromMilliseconds(1), ReportSpacingFactor = 0.9 };
        var core = Core(options, Window(1000, 1));
        var reports = new List<ShardReport>();
        for (long now = 1000; now <= 20_000; now += 100)
        {
            core.AssignRecord();
            core.OnDurable(core.AssignedSlots, core.AssignedSlots, now);
            if (core.ReportDue(now))
            {
                reports.Add(core.MakeReport(now));
            }
        }

        // 191 cuts completed over 19 ms: one report per 0.9 ms at most, never one per cut.
        Assert.InRange(reports.Count, 19, 22);
        for (var i = 1; i < reports.Count; i++)
        {
            Assert.True(reports[i].TimestampMicros - reports[i - 1].TimestampMicros >= 900, $"reports {i - 1} and {i} are {reports[i].TimestampMicros - reports[i - 1].TimestampMicros} µs apart");
            Assert.True(reports[i].DurableSlots - reports[i - 1].DurableSlots >= 9, "a report carries the cuts completed since the previous one");
        }
    }

    [Fact]
    public void A_report_that_only_says_the_shard_stopped_waiting_does_not_hold_back_the_next_cut()
    {
        // Low rate: one record per cut. Record 0's cut commits; after a cut interval without uncommitted records the
        // shard says it no longer waits. Record 1 arrives 300 µs later and completes cut 1: its report goes at once (the
        // last report of a cut was 1.8 ms ago), not 0.9 ms after the stop-waiting report.
        var options = new FixAnteOptions { CutsPerWindow = 100, ReportSpacingFactor = 0.9 };
        var core = Core(options, Window(100, 1));
        core.AssignRecord();
        core.OnDurable(1, 1, 1000);
        Assert.True(core.ReportDue(1000));
        Assert.True(core.MakeReport(1000).Waiting);
        core.OnCommitted(1, [], 1500, othersWaiting: true);
        Assert.False(core.ReportDue(1700)); // stopped waiting, but only for 200 µs: not news yet
        Assert.Equal(2500, core.NextDeadlineMicros);
        Assert.True(core.ReportDue(2500));
        var stopped = core.MakeReport(2500);
        Assert.False(stopped.Waiting);
        Assert.Equal(1, stopped.DurableSlots);
        core.AssignRecord();
        core.OnDurable(2, 2, 2800);
        Assert.True(core.ReportDue(2800));
        var next = core.MakeReport(2800);
        Assert.Equal(2, next.DurableSlots);
        Assert.True(next.Waiting);

        // Cut reports stay spaced among themselves: cut 2 completing 100 µs later is held back until 0.9 ms after cut 1's.
        core.AssignRecord();
        core.OnDurable(3, 3, 2900);
        Assert.False(core.ReportDue(2900));
        Assert.Equal(3700, core.NextDeadlineMicros);
    }

    [Fact]
    public void A_record_arriving_within_a_cut_interval_of_the_last_commit_means_no_stop_waiting_report_at_all()
    {
        // At steady low rates the next record usually comes before the news that the shard stopped waiting would be
        // due: then it is never sent (half the reports at 2,000 appends/s over 4 shards were such).
        var options = new FixAnteOptions { CutsPerWindow = 100, ReportSpacingFactor = 0.9 };
        var core = Core(options, Window(100, 1));
        var reports = new List<ShardReport>();
        for (long t = 1000; t < 21_000; t += 1000)
        {
            core.AssignRecord();
            core.OnDurable(core.AssignedSlots, core.AssignedSlots, t);
            if (core.ReportDue(t))
            {
                reports.Add(core.MakeReport(t));
            }

            core.OnCommitted(core.CommittedCut + 1, [], t + 400, othersWaiting: true);
            Assert.False(core.ReportDue(t + 900));
        }

        Assert.Equal(20, reports.Count); // one per record, each a cut report
        Assert.All(reports, r => Assert.True(r.Waiting));
    }

    [Fact]
    public void With_report_spacing_off_every_completed_cut_is_reported_at_once()
    {
        var options = new FixAnteOptions { CutsPerWindow = 1000, ReportSpacingFactor = 0 };
        var core = Core(options, Window(1000, 1));
        var reports = 0;
        for (long now = 1000; now <= 20_000; now += 100)
        {
            core.AssignRecord();
            core.OnDurable(core.AssignedSlots, core.AssignedSlots, now);
            if (core.ReportDue(now))
            {
                core.MakeReport(now);
                reports++;
            }
        }

        Assert.Equal(191, reports);
    }

    [Fact]
    public void A_held_back_report_becomes_due_at_the_end_of_the_spacing_and_the_shard_asks_to_be_woken_then()
    {
        var options = new FixAnteOptions { CutsPerWindow = 100, ReportSpacingFactor = 0.9 };
        var core = Core(options, Window(100, 1));
        core.AssignRecord();
        core.OnDurable(1, 1, 1000);
        Assert.True(core.ReportDue(1000));
        core.MakeReport(1000);
        core.AssignRecord();
        core.OnDurable(2, 2, 1200);
        Assert.False(core.ReportDue(1200)); // cut 1 completed 200 µs after the last report: held back
        Assert.Equal(1900, core.NextDeadlineMicros);
        Assert.True(core.ReportDue(1900));
        Assert.Equal(2, core.MakeReport(1900).DurableSlots);
    }

    [Fact]
    public void Lag_fix_answers_and_the_end_of_waiting_are_not_held_back_by_the_spacing()
    {
        var options = new FixAnteOptions { CutsPerWindow = 100, ReportSpacingFactor = 0.9 };
        var core = Core(options, Window(100, 1));
        core.AssignRecord();
        core.OnDurable(1, 1, 1000);
        core.MakeReport(1000);
        var fill = core.NoOpsForLagFix(5);
        Assert.Equal(4, fill);
        core.AssignNoOp(fill);
        core.OnDurable(5, 1, 1100);
        Assert.True(core.ReportDue(1100));
        Assert.True(core.MakeReport(1100).FixedLag);

        core.OnCommitted(5, [], 1150); // everything committed: the shard stopped waiting, news after a cut interval
        Assert.False(core.ReportDue(1160));
        Assert.True(core.ReportDue(2150)); // not held back by the spacing of cut reports either
        Assert.False(core.MakeReport(2150).Waiting);
    }

    [Theory]
    [InlineData(500, 2, 1)]    // 0.5 records per T_ord: cuts of 2 T_ord, one record each
    [InlineData(200, 2, 1)]    // capped at the default maximum factor
    [InlineData(5000, 1, 5)]   // busy: Belfast's cuts of one T_ord
    [InlineData(1200, 1, 1)]   // 1.2 per T_ord is enough
    public void The_next_window_doubles_its_cut_interval_until_an_average_shard_fills_its_quota(int perSecond, int factor, int quota)
    {
        var options = SequencerDriver.Options(w: 10, maxCutIntervalFactor: FixAnteOptions.DEFAULT_MAX_CUT_INTERVAL_FACTOR);
        var d = new SequencerDriver(options, 2);
        d.Report(0, 0, records: 0, micros: 1000);
        d.Report(1, 0, records: 0, micros: 1000);
        d.Report(0, 5, records: perSecond / 100, micros: 11_000);
        var o = d.Report(1, 5, records: perSecond / 100, micros: 11_000);
        var next = Assert.Single(o.NewWindows);
        Assert.Equal(factor, next.CutIntervalFactor);
        Assert.Equal([quota, quota], next.Quotas);
    }

    [Fact]
    public void A_factor_of_one_keeps_every_cut_at_one_ordering_interval()
    {
        var options = SequencerDriver.Options(w: 10, maxCutIntervalFactor: 1);
        var d = new SequencerDriver(options, 2);
        d.Report(0, 0, records: 0, micros: 1000);
        d.Report(1, 0, records: 0, micros: 1000);
        d.Report(0, 5, records: 2, micros: 11_000);
        var next = Assert.Single(d.Report(1, 5, records: 2, micros: 11_000).NewWindows);
        Assert.Equal(1, next.CutIntervalFactor);
    }

    [Fact]
    public void A_shard_in_a_window_of_longer_cuts_uses_that_interval_for_its_deadline_spacing_and_ticks()
    {
        var w0 = Window(2, 1);
        var w1 = w0.Next(ImmutableArray.Create(1), cutIntervalFactor: 4);
        var options = new FixAnteOptions { CutsPerWindow = 2, NoOpFill = NoOpFillPolicy.AfterLastReport };
        var core = Core(options, w0, w1);
        Assert.Equal(1000, core.CutIntervalMicros);
        core.AssignNoOp(2);
        core.OnDurable(2, 0, 10);
        Assert.Equal(4000, core.CutIntervalMicros);
        core.MakeReport(100);
        Assert.Equal(0, core.NoOpsForDeadline(100 + 5_999)); // 1.5 × 4 ms after the last report
        Assert.Equal(1, core.NoOpsForDeadline(100 + 6_000));
    }

    [Fact]
    public void On_the_cut_clock_shards_with_different_report_phases_fill_at_the_same_tick()
    {
        var options = new FixAnteOptions { CutsPerWindow = 100, NoOpFill = NoOpFillPolicy.CutClock };
        var a = Core(options, Window(100, 2));
        var b = Core(options, Window(100, 2));
        a.AssignRecord();
        b.AssignRecord();
        a.OnDurable(1, 1, 130);
        b.OnDurable(1, 1, 770);
        var fills = new List<(string Shard, long At)>();
        for (long now = 0; now <= 6000; now += 10)
        {
            if (a.NoOpsForDeadline(now) is var na and > 0)
            {
                a.AssignNoOp(na);
                fills.Add(("a", now));
            }

            if (b.NoOpsForDeadline(now) is var nb and > 0)
            {
                b.AssignNoOp(nb);
                fills.Add(("b", now));
            }
        }

        // Both part-way through cut 0: filled at the first tick 1.5 intervals after they were seen to start it, then
        // (idle, empty cuts) once per tick — always at multiples of the 1 ms interval, in step.
        Assert.All(fills, f => Assert.Equal(0, f.At % 1000));
        Assert.Equal(fills.Where(f => f.Shard == "a").Select(f => f.At).Skip(1), fills.Where(f => f.Shard == "b").Select(f => f.At).Skip(1));
        var ticks = fills.Where(f => f.Shard == "a").Select(f => f.At).ToArray();
        Assert.True(ticks.Zip(ticks.Skip(1)).All(p => p.Second - p.First == 1000), $"idle shard fills one cut per tick: {string.Join(",", ticks)}");
    }

    [Fact]
    public void A_stale_notice_from_a_pilot_executing_behind_cannot_tell_the_shard_that_nobody_waits()
    {
        var core = Core(new FixAnteOptions { CutsPerWindow = 10 }, Window(10, 1));
        core.OnCommitted(2, [], 100, othersWaiting: true, stateVersion: 40);
        core.OnCommitted(2, [], 110, othersWaiting: false, stateVersion: 35); // the slower pilot's older state
        Assert.True(core.OthersWaiting);
        Assert.True(core.Active);
        core.OnCommitted(3, [], 120, othersWaiting: false, stateVersion: 41); // newer: nobody waits any more
        Assert.False(core.OthersWaiting);
        core.OnCommitted(3, [], 130, othersWaiting: true); // unversioned notices are always taken
        Assert.True(core.OthersWaiting);
    }
}
