using System.Collections.Immutable;
using CsCheck;

namespace SpecLog.FixAnte.Tests;

public sealed class SequencerFixAnteTests
{
    /// <summary>One random input: which shard, how many slots/records it gained, how much time passed, what kind of report.</summary>
    public readonly record struct Step(int Shard, int SlotInc, int RecInc, int Dt, int Kind)
    {
        public override string ToString() => $"({Shard},+{SlotInc}s,+{RecInc}r,+{Dt}us,k{Kind})";
    }

    public sealed record Scenario(int Shards, int W, int LagPercent, bool LagFix, bool RateBased, int InitialQuota, List<Step> Steps, bool Slack = true, int SlackReports = 8, int MaxSlackPercent = 10)
    {
        public override string ToString() =>
            $"shards={Shards} W={W} lag%={LagPercent} lagFix={LagFix} slack={Slack}/{SlackReports}/{MaxSlackPercent}% rate={RateBased} q0={InitialQuota} steps=[{string.Join(' ', Steps)}]";

        public FixAnteOptions Options() => new()
        {
            CutsPerWindow = W,
            LagFixEnabled = LagFix,
            LagFixSlack = Slack,
            LagFixSlackReports = SlackReports,
            LagFixMaxSlackFraction = MaxSlackPercent / 100.0,
            LagFixFraction = LagPercent / 100.0,
            RateBasedQuotas = RateBased,
            InitialQuota = InitialQuota,
            OrderingInterval = TimeSpan.FromMilliseconds(1),
        };
    }

    private static readonly Gen<Step> GenStep =
        Gen.Select(
            Gen.Int[0, 3],
            Gen.OneOf(Gen.Int[0, 4], Gen.Int[0, 4], Gen.Int[0, 4], Gen.Int[10, 40]),
            Gen.Int[0, 8],
            Gen.Int[0, 3000],
            Gen.Int[0, 11])
        .Select(t => new Step(t.Item1, t.Item2, t.Item3, t.Item4, t.Item5));

    internal static readonly Gen<Scenario> GenScenario =
        Gen.Select(
            Gen.Select(Gen.Int[1, 4], Gen.Int[2, 24], Gen.OneOf(Gen.Const(3), Gen.Const(20), Gen.Const(50)), Gen.Bool, Gen.Bool, Gen.Int[1, 3], GenStep.List[1, 160]),
            Gen.Bool,
            Gen.OneOf(Gen.Const(1), Gen.Const(3), Gen.Const(8)),
            Gen.OneOf(Gen.Const(0), Gen.Const(10), Gen.Const(40)))
        .Select(t => new Scenario(t.Item1.Item1, t.Item1.Item2, t.Item1.Item3, t.Item1.Item4, t.Item1.Item5, t.Item1.Item6, t.Item1.Item7, t.Item2, t.Item3, t.Item4));

    private static string Describe(SequencerOutput o) =>
        $"adv={o.CommitAdvanced} dup={o.Duplicate} win=[{string.Join(';', o.NewWindows)}] lag=[{string.Join(';', o.LagFixes)}]";

    private static string Describe(WindowConfig c) => $"{c} W={c.CutsPerWindow} view={c.ViewId}";

    private static (long, int, long, long, long, string) Snapshot(SequencerState s) =>
        (s.CommittedCut, s.History.Count, s.ReportsApplied, s.LagFixesIssued, s.LagFixesAcknowledged,
         string.Join(',', Enumerable.Range(0, s.ShardCount).Select(i => $"{s.DurableSlotsOf(i)}/{s.AppliedSeqOf(i)}/{s.KnownWindowsOf(i)}")));

    [Fact]
    public void Random_report_sequences_commit_exactly_the_min_completed_cut_and_decide_windows_at_mid_window()
    {
        GenScenario.Sample(sc =>
        {
            var options = sc.Options();
            var seq = new SequencerState(options, sc.Shards);
            var twin = new SequencerState(sc.Options(), sc.Shards);
            var init = new SequencerOutput();
            seq.Initialize(init);
            var twinInit = new SequencerOutput();
            twin.Initialize(twinInit);
            Assert.Single(init.NewWindows);
            var w0 = init.NewWindows[0];
            Assert.Equal((0L, 0L, 0L, sc.W), (w0.Window, w0.StartGsn, w0.FirstCut, w0.CutsPerWindow));
            Assert.Equal(Enumerable.Repeat(sc.InitialQuota, sc.Shards), w0.Quotas);
            Assert.Equal(Describe(init), Describe(twinInit));

            var threshold = Math.Max(1, (sc.LagPercent * sc.W + 99) / 100);
            var durable = new long[sc.Shards];
            var records = new long[sc.Shards];
            var micros = new long[sc.Shards];
            var applied = Enumerable.Repeat(-1L, sc.Shards).ToArray();
            var sent = Enumerable.Range(0, sc.Shards).Select(_ => new List<ShardReport>()).ToArray();
            var lastTarget = new long[sc.Shards];
            var jumpEnvelope = Enumerable.Repeat(-1L, sc.Shards).ToArray(); // × 256, -1 = nothing measured yet
            var jumpRecords = Enumerable.Repeat(-1L, sc.Shards).ToArray(); // records of the last report, -1 = none yet
            var acks = 0L;
            var reportsApplied = 0L;
            var seen = new List<WindowConfig>(seq.History.Windows);
            var layout = NaiveLayout.OfConfigs(seen);

            for (var i = 0; i < sc.Steps.Count; i++)
            {
                var step = sc.Steps[i];
                var at = i;
                var s = step.Shard % sc.Shards;
                ShardReport report;
                var replay = step.Kind == 0 && sent[s].Count > 0;
                if (replay)
                {
                    // A stale or repeated report, even with bigger (forged) content, must change nothing.
                    var old = sent[s][step.SlotInc % sent[s].Count];
                    report = old with { DurableSlots = old.DurableSlots + step.RecInc * 100, FixedLag = step.Dt % 2 == 0 };
                }
                else
                {
                    var completedBefore = layout.CompletedCut(s, durable[s]);
                    durable[s] += step.SlotInc;
                    records[s] += Math.Min(step.RecInc, step.SlotInc);

                    // The slack model: new records since the shard's previous report, in cuts of the quota of the window
                    // holding its completed cut (windows known before this report), beyond the first cut, capped at MaxSlackPercent of W; the
                    // envelope takes a bigger jump at once and otherwise loses 1/SlackReports of itself. A report that
                    // completed cuts without new records is a jump of 0; one that completed nothing and brought no record
                    // does not count. The first report only sets the baseline.
                    var moved = layout.CompletedCut(s, durable[s]) > completedBefore;
                    if (jumpRecords[s] >= 0 && (records[s] > jumpRecords[s] || moved))
                    {
                        var c = Math.Min(layout.CompletedCut(s, durable[s]), layout.TotalCuts - 1);
                        var w = Enumerable.Range(0, seen.Count).Last(x => layout.WindowFirstCut(x) <= c);
                        var quota = seen[w].QuotaOf(s);
                        if (quota > 0)
                        {
                            var jump = Math.Min(Math.Max(0, (records[s] - jumpRecords[s]) * 256 / quota - 256), (long)(sc.MaxSlackPercent * sc.W / 100) * 256);
                            jumpEnvelope[s] = jumpEnvelope[s] < 0 ? jump : Math.Max(jump, jumpEnvelope[s] - jumpEnvelope[s] / sc.SlackReports);
                        }
                    }

                    jumpRecords[s] = records[s];
                    micros[s] += step.Dt;
                    report = new ShardReport(s, applied[s] + 1, durable[s], records[s], micros[s], seq.History.Count, step.Kind == 1);
                    sent[s].Add(report);
                }

                var before = Snapshot(seq);
                var prevCommitted = seq.CommittedCut;
                var output = new SequencerOutput();
                seq.Apply(report, output);
                var twinOutput = new SequencerOutput();
                twin.Apply(report, twinOutput);
                Expect.Equal(Describe(output), Describe(twinOutput), () => $"step {at}: outputs of two instances fed the same reports");

                if (replay)
                {
                    Expect.True(output.Duplicate, () => $"step {at}: stale report {report} not flagged Duplicate");
                    Expect.Equal(before, Snapshot(seq), () => $"step {at}: stale report {report} changed the state");
                    Expect.True(output.NewWindows.Count == 0 && output.LagFixes.Count == 0 && !output.CommitAdvanced, () => $"step {at}: stale report produced {Describe(output)}");
                    continue;
                }

                Expect.True(!output.Duplicate, () => $"step {at}: fresh report {report} flagged Duplicate");
                applied[s] = report.ReportSeq;
                reportsApplied++;
                acks += report.FixedLag ? 1 : 0;
                Expect.Equal(reportsApplied, seq.ReportsApplied, () => $"step {at}: ReportsApplied");
                Expect.Equal(acks, seq.LagFixesAcknowledged, () => $"step {at}: LagFixesAcknowledged");
                Expect.Equal(report.ReportSeq, seq.AppliedSeqOf(s), () => $"step {at}: AppliedSeqOf({s})");
                Expect.Equal(durable[s], seq.DurableSlotsOf(s), () => $"step {at}: DurableSlotsOf({s})");

                // Decided windows never change; the new ones are exactly the ones reported in the output.
                var windows = seq.History.Windows;
                for (var w = 0; w < seen.Count; w++)
                {
                    var window = w;
                    Expect.True(ReferenceEquals(seen[w], windows[w]), () => $"step {at}: decided window {window} was replaced: {Describe(seen[window])} -> {Describe(windows[window])}");
                }

                Expect.Equal(
                    string.Join(';', windows.Skip(seen.Count).Select(Describe)),
                    string.Join(';', output.NewWindows.Select(Describe)),
                    () => $"step {at}: NewWindows vs windows added");
                foreach (var added in output.NewWindows)
                {
                    Expect.Equal(sc.W, added.CutsPerWindow, () => $"step {at}: W of {added}");
                    Expect.Equal(sc.Shards, added.ShardCount, () => $"step {at}: shard count of {added}");
                    Expect.True(added.Quotas.All(q => q >= options.MinQuota && q <= options.MaxQuota), () => $"step {at}: quota out of bounds in {added}");
                    Expect.True(sc.RateBased || added.Quotas.All(q => q == sc.InitialQuota), () => $"step {at}: quota changed without rate-based quotas: {added}");
                }

                if (output.NewWindows.Count > 0)
                {
                    seen = [.. windows];
                    layout = NaiveLayout.OfConfigs(seen);
                }

                // The committed cut is exactly the minimum of the shards' completed cuts (by the naive layout).
                var completed = Enumerable.Range(0, sc.Shards).Select(x => layout.CompletedCut(x, durable[x])).ToArray();
                var min = completed.Min();
                var leader = completed.Max();
                Expect.Equal(min, seq.CommittedCut, () => $"step {at}: CommittedCut vs min of completed cuts [{string.Join(',', completed)}]");
                Expect.Equal(layout.GsnOfCut(min), seq.CommittedGsn, () => $"step {at}: CommittedGsn");
                Expect.Equal(seq.CommittedCut > prevCommitted, output.CommitAdvanced, () => $"step {at}: CommitAdvanced");
                for (var x = 0; x < sc.Shards; x++)
                {
                    var shard = x;
                    Expect.Equal(completed[x], seq.CompletedCutOf(x), () => $"step {at}: CompletedCutOf({shard})");
                }

                // Lease windows: window w+1 exists iff the committed cut reached the middle of window w.
                for (var w = 0; w < windows.Count; w++)
                {
                    var window = w;
                    var mid = layout.WindowFirstCut(w) + sc.W / 2;
                    Expect.Equal(w < windows.Count - 1, seq.CommittedCut >= mid, () => $"step {at}: {windows.Count} windows with committed cut {seq.CommittedCut}, mid of window {window} is {mid}");
                }

                // Lag-fix: a shard's target is the leader minus its slack (its rounded jump envelope; 0 with slack off).
                // One signal per shard that is threshold cuts behind its target, re-issued only once the target moved
                // threshold past the last one.
                var expectedLag = new List<(int, long)>();
                if (sc.LagFix)
                {
                    for (var x = 0; x < sc.Shards; x++)
                    {
                        var slack = sc.Slack && jumpEnvelope[x] > 0 ? (jumpEnvelope[x] + 128) / 256 : 0;
                        var shard = x;
                        Expect.Equal(slack, seq.LagFixSlackOf(x), () => $"step {at}: LagFixSlackOf({shard})");
                        var target = leader - slack;
                        if (completed[x] + threshold <= target && lastTarget[x] + threshold <= target)
                        {
                            lastTarget[x] = target;
                            expectedLag.Add((x, target));
                        }
                    }
                }

                Expect.Equal(string.Join(';', expectedLag), string.Join(';', output.LagFixes), () => $"step {at}: lag fixes (threshold {threshold}, completed [{string.Join(',', completed)}])");
            }

            Expect.Equal(
                string.Join('\n', seq.History.Windows.Select(Describe)),
                string.Join('\n', twin.History.Windows.Select(Describe)),
                () => "histories of two instances fed the same reports");
            Assert.Equal(Snapshot(seq), Snapshot(twin));
        }, iter: 300, print: sc => sc.ToString());
    }

    [Fact]
    public void A_cut_commits_only_when_every_shard_reported_it()
    {
        var d = new SequencerDriver(SequencerDriver.Options(w: 10), 3);
        Assert.Empty(d.Report(0, 3).LagFixes);
        Assert.Equal(0, d.State.CommittedCut);
        Assert.False(d.Report(1, 5).CommitAdvanced);
        Assert.Equal(0, d.State.CommittedCut);
        var o = d.Report(2, 1);
        Assert.True(o.CommitAdvanced);
        Assert.Equal(1, d.State.CommittedCut);
        Assert.Equal(3, d.State.CommittedGsn); // one cut of three quota-1 shards
        Assert.True(d.Report(2, 2).CommitAdvanced);
        Assert.Equal(2, d.State.CommittedCut);
        Assert.False(d.Report(2, 2).CommitAdvanced); // same content, new seq: nothing new
        Assert.True(d.Report(2, 4).CommitAdvanced);
        Assert.Equal(3, d.State.CommittedCut); // limited by shard 0 at 3, never more
        Assert.Equal(9, d.State.CommittedGsn);
    }

    [Theory]
    [InlineData(10)]
    [InlineData(7)]
    [InlineData(2)]
    public void Next_window_is_decided_exactly_when_the_committed_cut_reaches_mid_window(int w)
    {
        var d = new SequencerDriver(SequencerDriver.Options(w: w), 2);
        d.Report(0, w); // shard 0 finished window 0
        for (var cut = 1; cut < w / 2; cut++)
        {
            var early = d.Report(1, cut);
            Assert.Empty(early.NewWindows);
            Assert.Equal(1, d.State.History.Count);
        }

        var o = d.Report(1, w / 2);
        var next = Assert.Single(o.NewWindows);
        Assert.Equal(2, d.State.History.Count);
        Assert.Equal(1, next.Window);
        Assert.Equal(w, next.FirstCut);
        Assert.Equal(2L * w, next.StartGsn);
    }

    [Fact]
    public void Duplicate_and_stale_reports_change_nothing()
    {
        var d = new SequencerDriver(SequencerDriver.Options(w: 10, lagFix: true), 2);
        d.Report(0, 2, micros: 10);
        d.Report(1, 1, micros: 10);
        var state = d.State;
        var before = Snapshot(state);
        foreach (var stale in new[]
                 {
                     new ShardReport(0, 0, 9, 9, 99, 1, true),  // same seq as applied, forged bigger content
                     new ShardReport(1, 0, 0, 0, 0, 0, false),
                     new ShardReport(0, -5, 100, 100, 100, 5, true),
                 })
        {
            var o = new SequencerOutput();
            state.Apply(stale, o);
            Assert.True(o.Duplicate);
            Assert.False(o.CommitAdvanced);
            Assert.Empty(o.NewWindows);
            Assert.Empty(o.LagFixes);
            Assert.Equal(before, Snapshot(state));
        }

        var fresh = new SequencerOutput();
        state.Apply(new ShardReport(1, 5, 2, 0, 20, 1, false), fresh); // gaps in seq are fine
        Assert.False(fresh.Duplicate);
        Assert.Equal(2, state.CommittedCut);
        Assert.Equal(5, state.AppliedSeqOf(1));

        // Reports are cumulative: a newer report with fewer slots does not move anything backwards.
        state.Apply(new ShardReport(1, 6, 1, 0, 30, 1, false), fresh);
        Assert.Equal(2, state.DurableSlotsOf(1));
        Assert.Equal(2, state.CommittedCut);
    }

    [Fact]
    public void Unknown_shard_throws()
    {
        var d = new SequencerDriver(SequencerDriver.Options(), 2);
        var o = new SequencerOutput();
        Assert.Throws<ArgumentOutOfRangeException>(() => d.State.Apply(new ShardReport(2, 0, 1, 0, 0, 1, false), o));
        Assert.Throws<ArgumentOutOfRangeException>(() => d.State.Apply(new ShardReport(-1, 0, 1, 0, 0, 1, false), o));
        Assert.Equal(0, d.State.ReportsApplied);
        Assert.Throws<ArgumentOutOfRangeException>(() => new SequencerState(SequencerDriver.Options(), 0));
        Assert.Throws<ArgumentException>(() => new SequencerState(SequencerDriver.Options(w: 1), 1));
    }

    [Fact]
    public void Recovered_windows_are_kept_and_not_reinitialised()
    {
        var windows = NaiveLayout.Chain([(4, [2, 1]), (4, [3, 1])]);
        var d = new SequencerDriver(SequencerDriver.Options(w: 4), 2, windows);
        Assert.Empty(d.InitOutput.NewWindows);
        Assert.Equal(windows, d.State.History.Windows);
        d.Report(0, d.SlotsToComplete(0, 6));
        var o = d.Report(1, d.SlotsToComplete(1, 6)); // mid of window 1 = cut 4 + 2
        Assert.Equal(6, d.State.CommittedCut);
        var w2 = Assert.Single(o.NewWindows);
        Assert.Equal(2, w2.Window);
        Assert.Equal(windows[1].EndGsn, w2.StartGsn);
    }

    // ---- Lag-fix -------------------------------------------------------------------------------------------------

    [Fact]
    public void A_laggard_gets_one_lag_fix_until_it_falls_behind_by_the_threshold_again()
    {
        var d = new SequencerDriver(SequencerDriver.Options(w: 100, lagFix: true), 3);
        var threshold = (int)Math.Ceiling(0.03 * 100);
        Assert.Empty(d.Report(0, threshold - 1).LagFixes); // 2 behind: not yet
        Assert.Equal([(1, (long)threshold), (2, threshold)], d.Report(0, threshold).LagFixes);
        Assert.Equal(2, d.State.LagFixesIssued);
        Assert.Empty(d.Report(0, threshold + 1).LagFixes); // still lagging, already told
        Assert.Empty(d.Report(1, threshold, fixedLag: true).LagFixes); // shard 1 filled up to 3
        Assert.Equal(1, d.State.LagFixesAcknowledged);
        Assert.Empty(d.Report(0, 2 * threshold - 1).LagFixes);
        // Leader at 6: shard 2 (at 0) and shard 1 (at 3) are again 3 behind their last target.
        Assert.Equal([(1, 2L * threshold), (2, 2L * threshold)], d.Report(0, 2 * threshold).LagFixes);
        Assert.Empty(d.Report(1, 2 * threshold, fixedLag: true).LagFixes);
        Assert.Empty(d.Report(2, 2 * threshold, fixedLag: true).LagFixes);
        Assert.Equal(3, d.State.LagFixesAcknowledged);
        Assert.Equal(4, d.State.LagFixesIssued);
        Assert.Equal(2 * threshold, d.State.CommittedCut);
    }

    [Theory]
    [InlineData(10, 1)]
    [InlineData(34, 2)]
    [InlineData(100, 3)]
    [InlineData(200, 6)]
    public void Lag_fix_threshold_is_ceil_of_three_percent_of_w(int w, int threshold)
    {
        var options = SequencerDriver.Options(w: w, lagFix: true);
        Assert.Equal(threshold, options.LagFixThreshold(w));
        var d = new SequencerDriver(options, 2);
        if (threshold > 1)
        {
            Assert.Empty(d.Report(0, threshold - 1).LagFixes);
        }

        Assert.Equal([(1, (long)threshold)], d.Report(0, threshold).LagFixes);
    }

    [Fact]
    public void Lag_fix_disabled_issues_none()
    {
        var d = new SequencerDriver(SequencerDriver.Options(w: 100, lagFix: false), 3);
        for (var slots = 1; slots <= 40; slots++)
        {
            Assert.Empty(d.Report(0, slots).LagFixes);
        }

        d.Report(1, 5, fixedLag: true);
        Assert.Equal(0, d.State.LagFixesIssued);
        Assert.Equal(1, d.State.LagFixesAcknowledged);
    }

    // ---- Rate-based quotas ---------------------------------------------------------------------------------------

    /// <summary>The spec: max(MinQuota, round(rate·T_ord)) capped at MaxQuota, kept if within the tolerance of the old quota.</summary>
    private static int ExpectedQuota(long records, long micros, int tOrdMicros, int old, FixAnteOptions o)
    {
        var target = (long)Math.Round((double)records * tOrdMicros / micros, MidpointRounding.AwayFromZero);
        target = Math.Clamp(target, o.MinQuota, o.MaxQuota);
        return Math.Abs(target - old) * 100 <= 5L * old ? old : (int)target;
    }

    [Theory]
    [InlineData(0, 10_000, 1000)]
    [InlineData(237, 10_000, 1000)]   // 23.7 per T_ord -> 24
    [InlineData(14, 10_000, 1000)]    // 1.4 -> 1
    [InlineData(16, 10_000, 1000)]    // 1.6 -> 2
    [InlineData(3_333, 7_000, 1000)]  // 476.1 -> 476
    [InlineData(237, 10_000, 2000)]   // 47.4 -> 47
    [InlineData(999, 10_000, 500)]    // 49.95 -> 50
    [InlineData(1_000_000, 10_000, 1000)] // exactly MaxQuota
    [InlineData(3_000_000, 10_000, 1000)] // capped at MaxQuota
    public void Next_quota_follows_the_reported_rate(long records, long micros, int tOrdMicros)
    {
        var options = SequencerDriver.Options(w: 10, tOrdMicros: tOrdMicros);
        var d = new SequencerDriver(options, 2);
        d.Report(0, 0, records: 0, micros: 1000);
        d.Report(1, 0, records: 0, micros: 1000);
        d.Report(0, 5, records: records, micros: 1000 + micros);
        var o = d.Report(1, 5, records: 0, micros: 1000 + micros); // idle shard: rate 0 -> minimum quota
        var next = Assert.Single(o.NewWindows);
        Assert.Equal(ExpectedQuota(records, micros, tOrdMicros, 1, options), next.Quotas[0]);
        Assert.Equal(options.MinQuota, next.Quotas[1]);
    }

    [Theory]
    [InlineData(1040, 100)]
    [InlineData(960, 100)]
    [InlineData(1050, 100)]
    [InlineData(950, 100)]
    [InlineData(1060, 106)]
    [InlineData(940, 94)]
    [InlineData(2000, 200)]
    [InlineData(10, 1)]
    public void A_quota_change_within_five_percent_keeps_the_old_quota(long recordsIn10Ms, int expected)
    {
        var options = SequencerDriver.Options(w: 10);
        Assert.Equal(expected, ExpectedQuota(recordsIn10Ms, 10_000, 1000, 100, options)); // the table agrees with the spec
        var d = new SequencerDriver(options, 2, NaiveLayout.Chain([(10, [100, 1])]));
        d.Report(0, 0, records: 0, micros: 1000);
        d.Report(1, 0, records: 0, micros: 1000);
        d.Report(0, d.SlotsToComplete(0, 5), records: recordsIn10Ms, micros: 11_000);
        var o = d.Report(1, d.SlotsToComplete(1, 5), records: 10, micros: 11_000);
        var next = Assert.Single(o.NewWindows);
        Assert.Equal(expected, next.Quotas[0]);
        Assert.Equal(1, next.Quotas[1]);
    }

    [Fact]
    public void A_rate_change_affects_only_windows_decided_after_it()
    {
        var options = SequencerDriver.Options(w: 10);
        var d = new SequencerDriver(options, 2);
        long records0 = 0, records1 = 0;
        var rate0 = 20; // records per ms (= per T_ord)
        var decided = new List<WindowConfig>();
        for (var k = 1; d.State.History.Count < 3; k++)
        {
            Assert.True(k < 100, "window 2 was never decided");
            records0 += rate0;
            records1 += 1;
            d.Report(0, d.SlotsToComplete(0, k), records0, 1000L * k);
            var o = d.Report(1, d.SlotsToComplete(1, k), records1, 1000L * k);
            decided.AddRange(o.NewWindows);
            if (d.State.History.Count == 2 && rate0 == 20)
            {
                rate0 = 50; // from now on shard 0 is faster
                Assert.Equal([20, 1], d.State.History[1].Quotas);
            }
        }

        Assert.Equal(2, decided.Count);
        Assert.Equal([20, 1], d.State.History[1].Quotas); // decided before the change: unchanged
        Assert.Same(decided[0], d.State.History[1]);
        Assert.Equal([50, 1], d.State.History[2].Quotas);
        Assert.Equal(15, d.State.CommittedCut); // mid of window 1 (cuts 10..19)
    }

    [Theory]
    [InlineData(0.0, 40, 2)]   // Belfast: the rate since the previous decision, 1 ms ago: one client batch decides
    [InlineData(0.5, 8, 1)]    // at least W/2 T_ord back: from the first mark, 11 ms ago
    public void A_window_decided_soon_after_the_previous_one_measures_the_rate_over_the_minimum_span(double fraction, int quota0, int quota1)
    {
        var options = SequencerDriver.Options(w: 10);
        options.RateMeasureFraction = fraction;
        var d = new SequencerDriver(options, 2);
        d.Report(0, 0, records: 0, micros: 1_000);
        d.Report(1, 0, records: 0, micros: 1_000);
        d.Report(0, d.SlotsToComplete(0, 5), records: 50, micros: 11_000);  // 5 per ms for 10 ms
        var w1 = Assert.Single(d.Report(1, d.SlotsToComplete(1, 5), records: 10, micros: 11_000).NewWindows);
        Assert.Equal([5, 1], w1.Quotas);

        // 1 ms later a burst of 40 records completes the middle of window 1 at once: window 2 is decided.
        d.Report(0, d.SlotsToComplete(0, 15), records: 90, micros: 12_000);
        var w2 = Assert.Single(d.Report(1, d.SlotsToComplete(1, 15), records: 12, micros: 12_000).NewWindows);
        Assert.Equal([quota0, quota1], w2.Quotas);
    }

    [Fact]
    public void Without_rate_based_quotas_every_window_keeps_the_initial_quota()
    {
        var d = new SequencerDriver(SequencerDriver.Options(w: 4, rateBased: false, initialQuota: 3), 2);
        for (var k = 1; k <= 20; k++)
        {
            d.Report(0, d.SlotsToComplete(0, k), 1000L * k, 1000L * k);
            d.Report(1, d.SlotsToComplete(1, k), 0, 1000L * k);
        }

        Assert.True(d.State.History.Count >= 5);
        Assert.All(d.State.History.Windows, w => Assert.Equal([3, 3], w.Quotas));
    }
}
