namespace SpecLog.FixAnte.Tests;

/// <summary>
/// Lag-fix with slack (<see cref="FixAnteOptions.LagFixSlack"/>): shards whose completed cut moves in jumps of several
/// cuts per report (group commit, client batches) are not filled up to whichever shard flushed last, while a shard that
/// really falls behind (it stops, or another shard takes a burst) is still filled and the committed cut keeps moving.
/// </summary>
public sealed class LagFixSlackTests(ITestOutputHelper output)
{
    // ---- A small deterministic model on the sequencer alone ------------------------------------------------------

    /// <summary>
    /// Shards with quota 5 per cut, each receiving exactly 5 records per millisecond and flushing every
    /// <c>periods[s]</c> ms (shard s at the ms t with (t + s) % periods[s] == 0, so the flushes are staggered): a flush
    /// reports every record received so far plus the no-ops lag-fixes made the shard fill, so one report completes
    /// periods[s] cuts. A lag-fix signal makes the shard fill, at once, the no-ops the target needs on top of every slot
    /// it has assigned (records received so far included); its next flush makes the fill durable and its report says
    /// FixedLag. A stopped shard receives no records but still flushes a fill (the next millisecond).
    /// </summary>
    private sealed class StaggeredShards
    {
        public const int QUOTA = 5;

        private readonly int[] _periods;
        private readonly long[] _extra;
        private readonly bool[] _stopped;
        private readonly long[] _records;
        private readonly bool[] _filled;

        public StaggeredShards(bool slack, params int[] periods)
        {
            _periods = periods;
            var options = SequencerDriver.Options(w: 100, lagFix: true, rateBased: false, initialQuota: QUOTA);
            options.LagFixSlack = slack;
            Driver = new SequencerDriver(options, periods.Length);
            NoOps = new long[periods.Length];
            _extra = new long[periods.Length];
            _stopped = new bool[periods.Length];
            _records = new long[periods.Length];
            _filled = new bool[periods.Length];
        }

        public SequencerDriver Driver { get; }

        public SequencerState State => Driver.State;

        /// <summary>No-op slots each shard filled.</summary>
        public long[] NoOps { get; }

        /// <summary>Every lag-fix: when (ms), to whom, the target, the leader's completed cut and the shard's own then.</summary>
        public List<(int T, int Shard, long Target, long Leader, long Completed)> LagFixes { get; } = [];

        public void Burst(int shard, int records) => _extra[shard] += records;

        public void Stop(int shard) => _stopped[shard] = true;

        public long Leader => Enumerable.Range(0, _periods.Length).Max(State.CompletedCutOf);

        public void Run(int fromMs, int toMs)
        {
            for (var t = fromMs; t < toMs; t++)
            {
                for (var s = 0; s < _periods.Length; s++)
                {
                    if (!_stopped[s])
                    {
                        _records[s] = (long)QUOTA * t + _extra[s]; // everything received up to now
                    }

                    if (_stopped[s] ? _filled[s] : (t + s) % _periods[s] == 0)
                    {
                        var fixedLag = _filled[s];
                        _filled[s] = false;
                        Handle(t, Driver.Report(s, _records[s] + NoOps[s], _records[s], micros: 1000L * t, fixedLag: fixedLag));
                    }
                }
            }
        }

        private void Handle(int t, SequencerOutput o)
        {
            foreach (var (shard, target) in o.LagFixes)
            {
                LagFixes.Add((t, shard, target, Leader, State.CompletedCutOf(shard)));
                NoOps[shard] += Math.Max(0, QUOTA * target - (_records[shard] + NoOps[shard]));
                _filled[shard] = true;
            }
        }
    }

    private static readonly int[] s_jumps = [2, 3, 4, 3];

    [Fact]
    public void Staggered_jumps_of_two_to_four_cuts_get_no_lag_fix_to_the_momentary_leader()
    {
        var model = new StaggeredShards(slack: true, s_jumps);
        model.Run(1, 100); // the sequencer learns each shard's jump
        Assert.Equal(s_jumps.Select(j => (long)j - 1), Enumerable.Range(0, 4).Select(model.State.LagFixSlackOf)); // cuts beyond the first
        var before = (model.LagFixes.Count, model.NoOps.Sum());
        model.Run(100, 400);

        Assert.Equal(before, (model.LagFixes.Count, model.NoOps.Sum())); // no lag-fix, no no-op once the slack is known
        Assert.InRange(model.State.CommittedCut, 400 - 4, 400); // the cuts run at the pace of the records: 1 per ms
    }

    [Fact]
    public void Without_slack_the_same_load_ratchets_lag_fixes_to_the_momentary_leader()
    {
        // Belfast's rule on the same load, to show what the slack avoids: every shard 3 cuts behind the leader is filled
        // up to it, its own next records then land beyond that cut, it leads, and so on.
        var model = new StaggeredShards(slack: false, s_jumps);
        model.Run(1, 400);
        var late = model.LagFixes.Where(l => l.T >= 20).ToList();
        Assert.NotEmpty(late);
        Assert.All(late, l => Assert.Equal(l.Leader, l.Target));
        Assert.True(model.State.CommittedCut > 450, $"committed cut {model.State.CommittedCut} after 400 ms: the cuts did not run ahead of the records");
        Assert.True(model.NoOps.Sum() > 1_000, $"{model.NoOps.Sum()} no-op slots");
    }

    [Fact]
    public void A_burst_of_thirty_records_on_one_shard_still_gets_the_others_lag_fixed_and_commits()
    {
        var model = new StaggeredShards(slack: true, s_jumps);
        model.Run(1, 200);
        var before = model.LagFixes.Count;
        model.Burst(0, 30); // 6 cuts at once on shard 0
        model.Run(200, 400);

        var fixes = model.LagFixes.Skip(before).ToList();
        output.WriteLine(string.Join('\n', fixes));
        Assert.Equal([1, 2, 3], fixes.Where(l => l.T < 205).Select(l => l.Shard).Order()); // each other shard, at once
        foreach (var l in fixes)
        {
            var slack = model.State.LagFixSlackOf(l.Shard);
            Assert.Equal(l.Leader - slack, l.Target);    // filled to the leader minus its own jump, not to the leader
            Assert.True(l.Target >= l.Completed + 3, $"{l}: target within the threshold of the shard's own cut");
        }

        // Each filled at most the burst's 6 cuts (later signals, when a shard's report is due, need no fill): the
        // leader does not move on, nothing ratchets.
        Assert.Equal(0, model.NoOps[0]);
        Assert.All(model.NoOps, n => Assert.InRange(n, 0, 6 * StaggeredShards.QUOTA));
        Assert.True(model.Leader <= 400 + 6, $"leader {model.Leader}");
        // Liveness: the burst's records (shard 0's slots up to cut 206) commit, and the cuts keep pace afterwards.
        Assert.InRange(model.State.CommittedCut, 400 - 4, 406);
    }

    [Fact]
    public void A_shard_that_stops_is_lag_fixed_and_the_committed_cut_keeps_advancing()
    {
        var model = new StaggeredShards(slack: true, s_jumps);
        model.Run(1, 200);
        var before = model.LagFixes.Count;
        model.Stop(2); // no more records, no more reports of its own (the model has no deadline fills)
        model.Run(200, 400);

        var fixes = model.LagFixes.Skip(before).ToList();
        Assert.True(fixes.Count >= 40, $"{fixes.Count} lag-fixes to the stopped shard");
        Assert.All(fixes, l => Assert.Equal(2, l.Shard));
        Assert.All(fixes, l => Assert.True(l.Target >= l.Completed + 3 && l.Target <= l.Leader, l.ToString()));

        // Its fills bring no records, so its slack fades to 0 and it is filled up to the leader, like Belfast's rule.
        Assert.Equal(0, model.State.LagFixSlackOf(2));
        Assert.Contains(fixes, l => l.Target == l.Leader);
        Assert.True(model.State.CommittedCut >= model.Leader - 3, $"committed {model.State.CommittedCut}, leader {model.Leader}");
        Assert.True(model.State.CommittedCut >= 395, $"committed {model.State.CommittedCut}");
    }

    [Fact]
    public void The_fallback_still_fills_every_shard_behind_up_to_the_leader()
    {
        var model = new StaggeredShards(slack: true, s_jumps);
        model.Run(1, 100);
        var completed = Enumerable.Range(0, 4).Select(model.State.CompletedCutOf).ToArray();
        var leader = completed.Max();
        Assert.Contains(completed, c => c < leader); // staggered: somebody is behind, within its slack
        var o = new SequencerOutput();
        model.State.EvaluateFallback(o);
        Assert.Equal(
            Enumerable.Range(0, 4).Where(s => completed[s] < leader).Select(s => (s, leader)),
            o.LagFixes);
        Assert.True(o.CommitAdvanced);
    }

    [Fact]
    public void The_slack_is_the_envelope_of_new_records_per_report_in_cuts_capped_and_fading()
    {
        var options = SequencerDriver.Options(w: 40, lagFix: true, rateBased: false, initialQuota: 2);
        options.LagFixSlackReports = 4;
        options.LagFixMaxSlackFraction = 0.25; // at most 10 cuts
        Assert.Equal(10, options.LagFixMaxSlack(40));
        var d = new SequencerDriver(options, 2);
        Assert.Equal(0, d.State.LagFixSlackOf(0));
        d.Report(0, 4, records: 4);              // the first report only sets the baseline
        Assert.Equal(0, d.State.LagFixSlackOf(0));
        d.Report(0, 10, records: 10);            // 6 records at quota 2: 3 cuts, 2 beyond the first; the envelope starts at it
        Assert.Equal(2, d.State.LagFixSlackOf(0));
        d.Report(0, 10, records: 10);            // nothing new (a retransmission): not counted
        Assert.Equal(2, d.State.LagFixSlackOf(0));
        d.Report(0, 12, records: 10);            // a no-op fill moved it, no record: a jump of 0, the envelope fades
        Assert.Equal(2, d.State.LagFixSlackOf(0)); // 2 - 2/4 = 1.5 -> 2
        d.Report(0, 22, records: 20);            // 5 cuts, 4 beyond the first: bigger, taken at once
        Assert.Equal(4, d.State.LagFixSlackOf(0));
        d.Report(0, 24, records: 22);            // 1 cut, none beyond: 4 - 4/4 = 3
        Assert.Equal(3, d.State.LagFixSlackOf(0));
        d.Report(0, 40, records: 23, fixedLag: true); // a lag-fix fill counts only by its records: 3 - 0.75 = 2.25 -> 2
        Assert.Equal(2, d.State.LagFixSlackOf(0));
        d.Report(0, 79, records: 71);            // 24 cuts, capped at 10
        Assert.Equal(10, d.State.LagFixSlackOf(0));
        Assert.Equal(0, d.State.LagFixSlackOf(1));

        options.LagFixSlack = false;
        var off = new SequencerDriver(options, 2);
        off.Report(0, 4, records: 4);
        off.Report(0, 10, records: 10);
        Assert.Equal(0, off.State.LagFixSlackOf(0));
    }

    // ---- The end-to-end simulation under the loads that showed the problem -------------------------------------

    /// <summary>
    /// 4 shards at 5,000 records/s each (quota 5 at T_ord 1 ms), client batches 1–5 ms apart carrying what accumulated
    /// (5–25 records), group commit of 0.3–1.5 ms, 50–300 µs network: one report completes several cuts, the flushes
    /// are not synchronised. Measured from 200 ms to 1.2 s.
    /// </summary>
    internal static SimulationLoad SteadyLoad(bool slack) => new()
    {
        CutsPerWindow = 100,
        SteadyRecordsPerMs = 5,
        BatchGapMinMicros = 1_000,
        BatchGapMaxMicros = 5_000,
        GroupCommit = true,
        FlushMinMicros = 300,
        FlushMaxMicros = 1_500,
        NetMinMicros = 50,
        NetMaxMicros = 300,
        MeasureFromMicros = 200_000,
        AppendStopMicros = 1_200_000,
        EndMicros = 1_400_000,
        Configure = o => o.LagFixSlack = slack,
    };

    /// <summary>
    /// The shards bench's load (20,000 appends/s over 4 shards) through a client batcher like SpecLogClient's (at most
    /// 4 calls in flight per shard, each carrying what queued), with the bench machine's slow messages (0.2–2 ms) and
    /// fsyncs (1–4 ms): batches grow with the commit latency and arrive together after commit notices.
    /// </summary>
    internal static SimulationLoad BenchLikeLoad(bool slack) => SteadyLoad(slack) with
    {
        ClientBatching = true,
        BatchGapMinMicros = 900,
        BatchGapMaxMicros = 1_300,
        NetMinMicros = 200,
        NetMaxMicros = 2_000,
        FlushMinMicros = 1_000,
        FlushMaxMicros = 4_000,
    };

    public static TheoryData<int> Seeds => new(1, 2, 3);

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Jumpy_reports_under_steady_load_no_longer_ratchet_the_cuts(int seed)
    {
        var with = new Simulation(seed, OrderingMode.FixAnte, SteadyLoad(slack: true));
        output.WriteLine("slack on:  " + with.Run());
        var without = new Simulation(seed, OrderingMode.FixAnte, SteadyLoad(slack: false));
        output.WriteLine("slack off: " + without.Run());
        var on = with.Measure!;
        var off = without.Measure!;

        // Belfast's rule ratchets: about a third of the slots are no-ops and the cuts run ahead of the records.
        Assert.True(off.NoOpFraction > 0.25, $"slack off: {off}");
        Assert.True(off.CutsPerMs > 1.35, $"slack off: {off}");

        // With slack: no lag-fix to the momentary leader's cut, far fewer no-ops (mostly deadline fills of shards whose
        // next client batch is late), and the cuts nearly keep the records' pace.
        Assert.Equal(0, on.LagFixesToLeader);
        Assert.True(on.NoOpFraction < 0.15, $"slack on: {on}");
        Assert.True(on.LagFixNoOpSlots < on.NoOpSlots / 3, $"slack on: {on}");
        Assert.True(on.CutsPerMs < 1.2, $"slack on: {on}");
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void The_bench_load_through_a_client_batcher_keeps_no_ops_low(int seed)
    {
        var with = new Simulation(seed, OrderingMode.FixAnte, BenchLikeLoad(slack: true));
        output.WriteLine("slack on:  " + with.Run());
        var without = new Simulation(seed, OrderingMode.FixAnte, BenchLikeLoad(slack: false));
        output.WriteLine("slack off: " + without.Run());
        var on = with.Measure!;
        var off = without.Measure!;

        // Belfast's rule ratchets here too: far more no-ops, and the cuts run ahead of the records (compared with the
        // same load and seed with slack; in absolute terms ~20-28 % and 1.24-1.4 cuts/ms).
        Assert.True(off.NoOpFraction > Math.Max(0.15, 1.5 * on.NoOpFraction), $"slack off: {off}; on: {on}");
        Assert.True(off.CutsPerMs > Math.Max(1.2, on.CutsPerMs + 0.08), $"slack off: {off}; on: {on}");

        Assert.Equal(0, on.LagFixesToLeader);
        Assert.True(on.NoOpFraction < 0.13, $"slack on: {on}");
        Assert.True(on.CutsPerMs < 1.15, $"slack on: {on}");
        // The price: a laggard's own next batch, not a fill, completes the leader's cut. The median record-to-commit
        // latency stays put (the p99 grows by about a fifth in this simulation).
        Assert.True(on.CommitP50Micros < off.CommitP50Micros * 1.1, $"slack on: {on}; slack off: {off}");
    }

    [Fact]
    public void Steady_load_with_a_shard_that_stops_appending_still_commits_everything()
    {
        var load = SteadyLoad(slack: true) with { StoppedShard = 2, StopAtMicros = 500_000 };
        var sim = new Simulation(7, OrderingMode.FixAnte, load);
        output.WriteLine(sim.Run()); // the run's own checks: every record committed, no commit stall of 30 ms

        var fixes = sim.LagFixLog.Where(l => l.Shard == 2 && l.Micros > 500_000).ToList();
        Assert.True(fixes.Count >= 10, $"{fixes.Count} lag-fixes to the stopped shard");
        var cutAt = (long micros) => sim.Commits.Last(c => c.Micros <= micros).Cut;
        var pace = (cutAt(1_200_000) - cutAt(600_000)) / 600.0;
        Assert.True(pace >= 0.9, $"{pace:F2} cuts/ms committed while shard 2 was idle");
    }

    [Fact]
    public void Steady_load_with_a_burst_of_thirty_records_commits_it_and_lag_fixes_the_others()
    {
        var load = SteadyLoad(slack: true) with { BurstRecords = 30, BurstShard = 1, BurstAtMicros = 600_000 };
        var sim = new Simulation(5, OrderingMode.FixAnte, load);
        output.WriteLine(sim.Run());

        var after = sim.LagFixLog.Where(l => l.Micros is > 600_000 and < 620_000 && l.Shard != 1).Select(l => l.Shard).Distinct();
        Assert.NotEmpty(after);
        Assert.True(sim.Measure!.NoOpFraction < 0.17, sim.Measure.ToString());
    }

    [Fact]
    public void Replaying_a_runs_reports_into_a_fresh_sequencer_gives_the_same_outputs()
    {
        var load = SteadyLoad(slack: true) with { BurstRecords = 30, BurstShard = 3, BurstAtMicros = 400_000, AppendStopMicros = 800_000, EndMicros = 900_000 };
        var sim = new Simulation(11, OrderingMode.FixAnte, load);
        sim.Run();
        Assert.NotEmpty(sim.LagFixLog);

        var replica = new SequencerState(sim.Options, 4);
        replica.Initialize(new SequencerOutput());
        for (var i = 0; i < sim.Applied.Count; i++)
        {
            var (report, expected) = sim.Applied[i];
            var o = new SequencerOutput();
            replica.Apply(report, o);
            var at = i;
            Expect.Equal(expected, Simulation.Describe(o), () => $"report {at} ({report})");
        }

        Assert.Equal(sim.Sequencer.CommittedCut, replica.CommittedCut);
        Assert.Equal(sim.Sequencer.LagFixesIssued, replica.LagFixesIssued);
        Assert.Equal(Enumerable.Range(0, 4).Select(sim.Sequencer.LagFixSlackOf), Enumerable.Range(0, 4).Select(replica.LagFixSlackOf));

        // And the same seed gives the same run.
        var again = new Simulation(11, OrderingMode.FixAnte, load);
        again.Run();
        Assert.Equal(sim.Applied, again.Applied);
    }
}
