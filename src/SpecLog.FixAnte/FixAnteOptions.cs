namespace SpecLog.FixAnte;

/// <summary>How records get their global positions.</summary>
public enum OrderingMode
{
    /// <summary>Belfast: quotas fixed ahead, shards know positions locally and deliver speculatively.</summary>
    FixAnte = 0,

    /// <summary>Scalog baseline: shards report what they hold every T_ord and deliver only after ordering.</summary>
    Scalog = 1,
}

/// <summary>When a shard short of its quota fills the rest of its current cut with no-ops.</summary>
public enum NoOpFillPolicy
{
    /// <summary>Belfast's rule (the default): <see cref="FixAnteOptions.NoOpDeadlineFactor"/> × the cut interval after the shard's last report.</summary>
    AfterLastReport = 0,

    /// <summary>
    /// Experimental: Belfast's deadline after the shard's last completed cut (one interval for an empty cut), taken at
    /// the next tick of a cut clock shared by every shard (multiples of the window's cut interval on the hosts'
    /// clocks), so all shards that fell short fill at the same instants. In the simulator under bursty client batches
    /// it fills about a fifth more cuts than <see cref="AfterLastReport"/> (docs/performance.md).
    /// </summary>
    CutClock = 1,
}

/// <summary>The parameters of Fix-Ante ordering, shared by shards and the sequencer (they must agree).</summary>
public sealed class FixAnteOptions
{
    /// <summary>Default W, cuts per window (Belfast's value).</summary>
    public const int DEFAULT_CUTS_PER_WINDOW = 100;

    /// <summary>Default ordering interval T_ord (Belfast's value).</summary>
    public static readonly TimeSpan DEFAULT_ORDERING_INTERVAL = TimeSpan.FromMilliseconds(1);

    /// <summary>Default relative change below which a quota is kept as it is.</summary>
    public const double DEFAULT_QUOTA_TOLERANCE = 0.05;

    /// <summary>Default smallest quota of a live shard.</summary>
    public const int DEFAULT_MIN_QUOTA = 1;

    /// <summary>Default largest quota; bounds the size of one cut.</summary>
    public const int DEFAULT_MAX_QUOTA = 100_000;

    /// <summary>
    /// Default lag, as a fraction of W, at which a shard is told to fill its missing cuts: 2 cuts at W = 100 (Belfast:
    /// 3 %). Measured under a steady load: at 2,000 appends/s append p50 1.4-1.5 ms against 1.7-1.8 ms with 3 %, the
    /// same no-ops and ordering commands (docs/performance.md).
    /// </summary>
    public const double DEFAULT_LAG_FIX_FRACTION = 0.02;

    /// <summary>Default number of reports over which a shard's lag-fix slack forgets a jump (it loses 1/N per report).</summary>
    public const int DEFAULT_LAG_FIX_SLACK_REPORTS = 8;

    /// <summary>Default largest lag-fix slack, as a fraction of W.</summary>
    public const double DEFAULT_LAG_FIX_MAX_SLACK_FRACTION = 0.1;

    /// <summary>Default shortest span, as a fraction of a window's nominal duration (W × T_ord), over which rates are measured.</summary>
    public const double DEFAULT_RATE_MEASURE_FRACTION = 0.5;

    /// <summary>Default no-op deadline, in multiples of T_ord after the shard's last report.</summary>
    public const double DEFAULT_NOOP_DEADLINE_FACTOR = 1.5;

    /// <summary>
    /// Default shortest gap between two reports of a shard that carry a newly completed cut, as a fraction of the cut
    /// interval. Measured under a steady load (anatomy, Single): 0.5 gives append p50 1.20-1.25 ms at 2,000/s and
    /// 1.45-1.58 ms at 20,000/s against 1.55-1.58 and 1.90-1.99 ms with 0.9, the same reports per append; 0 made the cuts
    /// race at 2,000/s (16-19 % no-ops).
    /// </summary>
    public const double DEFAULT_REPORT_SPACING_FACTOR = 0.5;

    /// <summary>Default largest cut interval, in multiples of T_ord, that the sequencer chooses at low rates.</summary>
    public const int DEFAULT_MAX_CUT_INTERVAL_FACTOR = 2;

    /// <summary>Default records a shard should bring to a cut, on average, before the cut interval stops growing.</summary>
    public const double DEFAULT_MIN_RECORDS_PER_CUT = 0.9;

    /// <summary>Default time without a committed cut after which the sequencer runs its fallback evaluation.</summary>
    public static readonly TimeSpan DEFAULT_FALLBACK_INTERVAL = TimeSpan.FromMilliseconds(10);

    /// <summary>Time without progress after which the sequencer re-sends its state and tells laggards to fill.</summary>
    public TimeSpan FallbackInterval { get; set; } = DEFAULT_FALLBACK_INTERVAL;

    /// <summary>Ordering mode: Fix-Ante (speculative) or the Scalog baseline.</summary>
    public OrderingMode Mode { get; set; } = OrderingMode.FixAnte;

    /// <summary>W: cuts per speculation-lease window.</summary>
    public int CutsPerWindow { get; set; } = DEFAULT_CUTS_PER_WINDOW;

    /// <summary>T_ord: the interval in which each shard should fill about one quota (and the Scalog report period).</summary>
    public TimeSpan OrderingInterval { get; set; } = DEFAULT_ORDERING_INTERVAL;

    /// <summary>Quotas whose new value is within this fraction of the old one stay unchanged.</summary>
    public double QuotaTolerance { get; set; } = DEFAULT_QUOTA_TOLERANCE;

    /// <summary>Smallest quota of a shard.</summary>
    public int MinQuota { get; set; } = DEFAULT_MIN_QUOTA;

    /// <summary>Largest quota of a shard.</summary>
    public int MaxQuota { get; set; } = DEFAULT_MAX_QUOTA;

    /// <summary>Quota of every shard in window 0.</summary>
    public int InitialQuota { get; set; } = DEFAULT_MIN_QUOTA;

    /// <summary>Lag (fraction of W cuts behind the leading shard) that triggers a lag-fix.</summary>
    public double LagFixFraction { get; set; } = DEFAULT_LAG_FIX_FRACTION;

    /// <summary>
    /// With <see cref="NoOpFillPolicy.AfterLastReport"/>: a shard fills its current cut with no-ops this many cut
    /// intervals after its last report.
    /// </summary>
    public double NoOpDeadlineFactor { get; set; } = DEFAULT_NOOP_DEADLINE_FACTOR;

    /// <summary>When shards fill their cuts with no-ops: Belfast's per-shard deadline (default) or at the ticks of a shared cut clock.</summary>
    public NoOpFillPolicy NoOpFill { get; set; } = NoOpFillPolicy.AfterLastReport;

    /// <summary>
    /// Fix-Ante: the shortest gap between two reports of a shard, as a fraction of the cut interval. A report carries
    /// every cut completed since the previous one, so a shard sends about one report per cut interval at any load
    /// (reports that answer a lag-fix or say the shard stopped waiting are sent at once). 0 reports every newly
    /// completed cut at once (one ordering-layer command per cut per shard).
    /// </summary>
    public double ReportSpacingFactor { get; set; } = DEFAULT_REPORT_SPACING_FACTOR;

    /// <summary>
    /// The largest cut interval, in multiples of T_ord, the sequencer may give a window. At low rates a quota of one
    /// record per T_ord is mostly no-ops; the sequencer then doubles the window's cut interval (up to this factor) until
    /// an average shard brings <see cref="MinRecordsPerCut"/> records per cut. 1 keeps every cut at T_ord (Belfast).
    /// Longer cuts trade no-ops for latency: a record waits for its cut's tick.
    /// </summary>
    public int MaxCutIntervalFactor { get; set; } = DEFAULT_MAX_CUT_INTERVAL_FACTOR;

    /// <summary>
    /// How the sequencer lays out the slots of a cut among the shards in the windows it decides (Fix-Ante mode).
    /// <see cref="FixAnte.CutLayout.Interleaved"/> (default) spreads each shard's slots over the cut in proportion to the
    /// quotas, so that GSN-ordered delivery waits for the other shards only at their own pace, not for their whole block:
    /// measured under a steady load at 20,000 appends/s over 4 shards, the GSN-order wait p50 0.30-0.48 ms against
    /// 0.48-0.73 ms (Single) and 0.64-0.76 against 0.92-1.08 ms (Copilot on 3 silos), docs/performance.md.
    /// <see cref="FixAnte.CutLayout.Blocked"/> is Belfast's layout. Recorded in every window, so a log may change it at
    /// any window boundary (windows decided before keep theirs).
    /// </summary>
    public CutLayout CutLayout { get; set; } = CutLayout.Interleaved;

    /// <summary>Records an average shard should bring per cut; below it the next window's cut interval doubles (see <see cref="MaxCutIntervalFactor"/>).</summary>
    public double MinRecordsPerCut { get; set; } = DEFAULT_MIN_RECORDS_PER_CUT;

    /// <summary>
    /// Whether shards stop filling no-ops and reporting while no shard holds an uncommitted record (an idle log costs
    /// nothing). Belfast fills at every deadline; with this on, the first record after an idle period makes the
    /// others fill at once. Off only for experiments.
    /// </summary>
    public bool QuiesceWhenIdle { get; set; } = true;

    /// <summary>Default <see cref="GroundingLagCuts"/>: Belfast's gap of 4 × T_ord.</summary>
    public const int DEFAULT_GROUNDING_LAG_CUTS = 4;

    /// <summary>Default <see cref="GroundingStrikes"/>: Belfast's three times in a row.</summary>
    public const int DEFAULT_GROUNDING_STRIKES = 3;

    /// <summary>Default <see cref="GroundingWindows"/>.</summary>
    public const int DEFAULT_GROUNDING_WINDOWS = 2;

    /// <summary>
    /// Straggler grounding (Belfast): a shard whose reports arrive <see cref="GroundingLagCuts"/> cuts or more behind the
    /// leading shard (beyond its lag-fix slack) <see cref="GroundingStrikes"/> reports in a row gets quota 0 for the next
    /// <see cref="GroundingWindows"/> windows the sequencer decides, then quota <see cref="MinQuota"/> for one window,
    /// then its measured rate again. A grounded shard has no slots, so the others' cuts no longer wait for its slow
    /// disk or network; its own records wait for its return. Quotas are decided a window ahead like any other, so
    /// grounding never mis-speculates. At least one shard always keeps a quota. Part of the replicated state machine:
    /// change it only with a fresh ordering layer. Off by default for now: in the seeded simulation it helps a log with
    /// one slow-disk shard (GroundingTests) but, under the bench-like client-batched load
    /// (LagFixSlackTests.The_bench_load_through_a_client_batcher_keeps_no_ops_low, seed 3), a shard stopped filling at
    /// cut 1729 after a grounded shard returned, and the log stalled; that interaction with lag-fix slack is open.
    /// </summary>
    public bool Grounding { get; set; }

    /// <summary>How far behind the leading shard (in cuts, beyond the shard's lag-fix slack) a report counts as a strike.</summary>
    public int GroundingLagCuts { get; set; } = DEFAULT_GROUNDING_LAG_CUTS;

    /// <summary>Consecutive lagging reports that ground a shard.</summary>
    public int GroundingStrikes { get; set; } = DEFAULT_GROUNDING_STRIKES;

    /// <summary>Windows a grounded shard spends at quota 0.</summary>
    public int GroundingWindows { get; set; } = DEFAULT_GROUNDING_WINDOWS;

    /// <summary>Whether the sequencer issues lag-fix signals (off only for experiments).</summary>
    public bool LagFixEnabled { get; set; } = true;

    /// <summary>
    /// Whether lag-fix leaves each shard the slack of its own jumps (on by default). A shard's records arrive and become
    /// durable in batches (client batches, group commit), so one report of a shard that keeps pace completes several
    /// cuts at once, and such a shard is normally up to one jump behind whichever shard reported last. With slack on,
    /// the sequencer keeps, per shard, the envelope of the cuts of new records its recent reports brought (the slack,
    /// see <see cref="SequencerState.LagFixSlackOf"/>); a shard lags only when it is <see cref="LagFixThreshold"/> cuts
    /// behind the leader on top of its slack, and is filled only up to the leader minus its slack, so its own next
    /// records complete the leader's cut instead of landing beyond it. Off: Belfast's rule, which fills every shard
    /// <see cref="LagFixThreshold"/> cuts behind up to the leader; with jumpy reports that makes the shard that reported
    /// last set the pace of the cuts for everyone, and a third of the slots become no-ops. A shard without records
    /// has no slack, and the fallback always fills up to the leader.
    /// </summary>
    public bool LagFixSlack { get; set; } = true;

    /// <summary>
    /// Over how many reports a shard's lag-fix slack forgets a jump: the envelope loses 1/N of itself with every report
    /// that brought records or moved the shard, and grows at once to any bigger jump. Used only with <see cref="LagFixSlack"/>.
    /// </summary>
    public int LagFixSlackReports { get; set; } = DEFAULT_LAG_FIX_SLACK_REPORTS;

    /// <summary>
    /// The largest lag-fix slack, as a fraction of W (rounded down to whole cuts): a report that brings more is a burst
    /// or a backlog after a stall, not a shard's normal step, and counts as this much. It also keeps the lag-fix trigger
    /// well inside the half window after which the next window must be decided. Used only with <see cref="LagFixSlack"/>.
    /// </summary>
    public double LagFixMaxSlackFraction { get; set; } = DEFAULT_LAG_FIX_MAX_SLACK_FRACTION;

    /// <summary>Whether quotas follow measured rates (off only for experiments: quotas stay at <see cref="InitialQuota"/>).</summary>
    public bool RateBasedQuotas { get; set; } = true;

    /// <summary>
    /// The shortest span of a shard's own clock, as a fraction of a window's nominal duration (W × T_ord), over which
    /// its rate is measured for the next quotas. Windows are normally decided about that far apart; when they come
    /// faster, the rate is measured from an earlier decision instead of from the previous one, so a quota never follows
    /// a few milliseconds of bursty arrivals. 0: always from the previous decision (Belfast's per-window rates).
    /// </summary>
    public double RateMeasureFraction { get; set; } = DEFAULT_RATE_MEASURE_FRACTION;

    /// <summary>Lag in cuts that triggers a lag-fix: at least one cut.</summary>
    public long LagFixThreshold(int cutsPerWindow) => Math.Max(1, (long)Math.Ceiling(LagFixFraction * cutsPerWindow - 1e-9));

    /// <summary>The largest lag-fix slack in cuts for windows of <paramref name="cutsPerWindow"/> cuts (see <see cref="LagFixMaxSlackFraction"/>).</summary>
    public long LagFixMaxSlack(int cutsPerWindow) => (long)Math.Floor(LagFixMaxSlackFraction * cutsPerWindow + 1e-9);

    /// <summary>The shortest span, in µs of a shard's clock, over which its rate is measured (see <see cref="RateMeasureFraction"/>).</summary>
    public long RateMeasureSpanMicros(int cutsPerWindow) => (long)(RateMeasureFraction * cutsPerWindow * OrderingInterval.TotalMicroseconds);

    /// <summary>The no-op deadline as a duration (for a cut interval of one T_ord).</summary>
    public TimeSpan NoOpDeadline => OrderingInterval * NoOpDeadlineFactor;

    /// <summary>T_ord in microseconds (at least 1).</summary>
    public long OrderingIntervalMicros => Math.Max(1, (long)OrderingInterval.TotalMicroseconds);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        static void Check(bool ok, string message)
        {
            if (!ok)
            {
                throw new ArgumentException(message);
            }
        }

        Check(CutsPerWindow >= 2, $"{nameof(CutsPerWindow)} must be at least 2 (got {CutsPerWindow}).");
        Check(OrderingInterval > TimeSpan.Zero, $"{nameof(OrderingInterval)} must be positive.");
        Check(QuotaTolerance is >= 0 and < 1, $"{nameof(QuotaTolerance)} must be in [0, 1).");
        Check(MinQuota >= 1, $"{nameof(MinQuota)} must be at least 1.");
        Check(MaxQuota >= MinQuota, $"{nameof(MaxQuota)} must be at least {nameof(MinQuota)}.");
        Check(InitialQuota >= MinQuota && InitialQuota <= MaxQuota, $"{nameof(InitialQuota)} must lie in [{nameof(MinQuota)}, {nameof(MaxQuota)}].");
        Check(GroundingLagCuts >= 1, $"{nameof(GroundingLagCuts)} must be at least 1.");
        Check(GroundingStrikes >= 1, $"{nameof(GroundingStrikes)} must be at least 1.");
        Check(GroundingWindows >= 1, $"{nameof(GroundingWindows)} must be at least 1.");
        Check(LagFixFraction is > 0 and <= 1, $"{nameof(LagFixFraction)} must be in (0, 1].");
        Check(RateMeasureFraction is >= 0 and <= 16, $"{nameof(RateMeasureFraction)} must be in [0, 16].");
        Check(LagFixSlackReports is >= 1 and <= 1024, $"{nameof(LagFixSlackReports)} must be in [1, 1024].");
        Check(LagFixMaxSlackFraction is >= 0 and < 0.5, $"{nameof(LagFixMaxSlackFraction)} must be in [0, 0.5).");
        Check(FallbackInterval > TimeSpan.Zero, $"{nameof(FallbackInterval)} must be positive.");
        Check(NoOpDeadlineFactor > 0, $"{nameof(NoOpDeadlineFactor)} must be positive.");
        Check(Enum.IsDefined(CutLayout), $"{nameof(CutLayout)} must be Blocked or Interleaved.");
        Check(Enum.IsDefined(NoOpFill), $"{nameof(NoOpFill)} must be CutClock or AfterLastReport.");
        Check(ReportSpacingFactor is >= 0 and <= 4, $"{nameof(ReportSpacingFactor)} must be in [0, 4].");
        Check(MaxCutIntervalFactor is >= 1 and <= 64, $"{nameof(MaxCutIntervalFactor)} must be in [1, 64].");
        Check(MinRecordsPerCut is >= 0 and <= 1000, $"{nameof(MinRecordsPerCut)} must be in [0, 1000].");
    }
}
