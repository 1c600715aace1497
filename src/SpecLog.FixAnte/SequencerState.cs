using System.Collections.Immutable;

namespace SpecLog.FixAnte;

/// <summary>
/// The sequencer as a deterministic state machine: shard reports in, committed cuts, next-window configurations and
/// lag-fix signals out. The same input order yields the same outputs, so the state machine can be replicated.
/// It reads no clock: rates come from the shards' own timestamps inside reports.
/// </summary>
public sealed partial class SequencerState
{
    // Fixed-point scale of the jump envelopes (integer arithmetic keeps replicas bit-identical on every platform).
    private const long JUMP_SCALE = 256;

    // Rate marks kept per shard: enough to reach back over the minimum measuring span even when windows are decided
    // much faster than nominally (a shard whose quota is far too small makes the cuts race).
    private const int RATE_MARKS = 16;

    private readonly FixAnteOptions _options;
    // Per shard, indexed by id; they grow when a shard joins (ShardControl.Join).
    private long[] _durableSlots = [];
    private long[] _appliedSeq = [];
    private long[] _lagFixTarget = [];
    private Queue<(long Micros, long Records)>[] _rateMarks = [];
    private (long Micros, long Records)[] _latest = [];
    private int[] _knownWindows = [];
    private bool[] _reportedSinceCut = [];
    private long[] _cutBase = [];
    private bool[] _waiting = [];
    private long[] _jumpEnvelope = [];
    private long[] _jumpRecords = [];
    private int[] _strikes = [];
    private int[] _groundedLeft = [];
    private bool[] _returning = [];
    private bool[] _joining = [];
    private bool[] _leaving = [];
    private bool[] _departed = [];
    private bool[] _failedOut = [];
    private long[] _rejoinFrom = [];
    private bool[] _failing = [];
    private int _waitingCount;
    private int _pendingChanges; // shards joining or leaving (a failing shard is leaving): windows still to decide for them

    /// <summary>
    /// Creates the state for <paramref name="shardCount"/> shards, resuming from recovered windows if any. The shard
    /// set of the newest recovered window wins over <paramref name="shardCount"/> when it is larger (shards joined
    /// since the log was created); configured shards beyond it join at the next window.
    /// </summary>
    /// <param name="options">The ordering options.</param>
    /// <param name="shardCount">The configured number of shards.</param>
    /// <param name="recoveredWindows">The windows persisted (from <paramref name="recoveredBase"/> on, if given; older ones are skipped).</param>
    /// <param name="recoveredBase">Where the persisted history starts after a trim (<see cref="TrimBelow"/>); null: window 0.</param>
    public SequencerState(FixAnteOptions options, int shardCount, IEnumerable<WindowConfig>? recoveredWindows = null, WindowBase? recoveredBase = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(shardCount, 1);
        _options = options;
        if (recoveredBase is not null)
        {
            History.StartAt(recoveredBase);
            TrimmedBelowGsn = recoveredBase.StartGsn;
        }

        if (recoveredWindows is not null)
        {
            History.AddRange(recoveredWindows);
        }

        var known = History.Last?.ShardCount ?? shardCount;
        Grow(Math.Max(shardCount, known));
        if (recoveredBase is not null)
        {
            // Everything below a trim was committed: the cuts before the base are, and every shard holds its slots there.
            CommittedCut = History.FirstCut;
            for (var s = 0; s < ShardCount; s++)
            {
                _durableSlots[s] = History.SlotStart(History.First, s);
            }
        }

        if (History.Last is { } last)
        {
            foreach (var d in last.Departed)
            {
                _departed[d] = true;
                _failedOut[d] = History.VoidOf(d) is not null && !IsRejoinVoid(d); // failed (may rejoin) rather than left
            }

            for (var s = known; s < ShardCount && options.Mode == OrderingMode.FixAnte; s++)
            {
                _joining[s] = true;
                _pendingChanges++;
            }
        }

        if (History.Count > 0 && options.Mode == OrderingMode.Scalog)
        {
            // Scalog cuts are windows decided at commit time: every recovered one was committed.
            CommittedCut = History.KnownEndCut;
            for (var s = 0; s < ShardCount; s++)
            {
                _cutBase[s] = History.KnownSlots(s);
                _durableSlots[s] = _cutBase[s];
            }
        }
    }

    /// <summary>The decided windows.</summary>
    public WindowHistory History { get; } = new();

    /// <summary>Number of shard ids the log has had (departed shards included): ids are 0 … ShardCount−1.</summary>
    public int ShardCount => _durableSlots.Length;

    /// <summary>Whether <paramref name="shard"/> has left the log (its windows from some point on give it no slot).</summary>
    public bool IsDeparted(int shard) => (uint)shard < (uint)ShardCount && _departed[shard];

    /// <summary>Whether <paramref name="shard"/> joined and waits for the next window to get its first quota.</summary>
    public bool IsJoining(int shard) => (uint)shard < (uint)ShardCount && _joining[shard];

    /// <summary>Whether <paramref name="shard"/> departed because it failed (it rejoins if its replicas come back).</summary>
    public bool IsFailedOut(int shard) => (uint)shard < (uint)ShardCount && _failedOut[shard];

    /// <summary>Whether <paramref name="shard"/> is to leave: the next window decided gives it no slot.</summary>
    public bool IsLeaving(int shard) => (uint)shard < (uint)ShardCount && _leaving[shard];

    /// <summary>Whether <paramref name="shard"/> was declared failed and the window settling it is not decided yet.</summary>
    public bool IsFailing(int shard) => (uint)shard < (uint)ShardCount && _failing[shard];

    /// <summary>Whole-shard failures settled since the log was created (or recovered).</summary>
    public long Failures { get; private set; }

    /// <summary>Shards that joined the log since it was created (or recovered).</summary>
    public long Joins { get; private set; }

    /// <summary>Shards that left the log since it was created (or recovered).</summary>
    public long Leaves { get; private set; }

    /// <summary>Failed shards that came back and rejoined.</summary>
    public long Rejoins { get; private set; }

    /// <summary>Cuts below this are committed.</summary>
    public long CommittedCut { get; private set; }

    /// <summary>GSNs below this are committed (confirmed).</summary>
    public long CommittedGsn => History.Count == 0 ? 0 : History.GsnOfCut(CommittedCut);

    /// <summary>
    /// True while some shard's latest report said it holds uncommitted records, or a shard-set change waits for the
    /// next window (the cuts must move for it to be decided).
    /// </summary>
    public bool AnyWaiting => _waitingCount > 0 || _pendingChanges > 0;

    /// <summary>Reports applied (duplicates excluded).</summary>
    public long ReportsApplied { get; private set; }

    /// <summary>Lag-fix signals issued.</summary>
    public long LagFixesIssued { get; private set; }

    /// <summary>Reports that answered a lag-fix.</summary>
    public long LagFixesAcknowledged { get; private set; }

    /// <summary>Times a straggler was grounded (given quota 0 for a few windows; see <see cref="FixAnteOptions.Grounding"/>).</summary>
    public long Groundings { get; private set; }

    /// <summary>Whether the shard is grounded: its quota in the windows decided lately is 0, or about to be.</summary>
    public bool IsGrounded(int shard) => _groundedLeft[shard] > 0 || _returning[shard];

    /// <summary>Consecutive lagging reports of a shard (strikes toward grounding).</summary>
    public int StrikesOf(int shard) => _strikes[shard];

    /// <summary>The options in force.</summary>
    public FixAnteOptions Options => _options;

    /// <summary>The durable slots last reported by a shard.</summary>
    public long DurableSlotsOf(int shard) => _durableSlots[shard];

    /// <summary>The highest report sequence number applied for a shard (-1 if none).</summary>
    public long AppliedSeqOf(int shard) => _appliedSeq[shard];

    /// <summary>The windows a shard said it knows in its latest report.</summary>
    public int KnownWindowsOf(int shard) => _knownWindows[shard];

    /// <summary>
    /// The lag-fix slack of a shard, in cuts: how many cuts beyond the first its reports bring at most, lately (a shard
    /// that reports one cut at a time keeps pace report by report and needs no slack beyond the threshold). It is the
    /// rounded envelope of new records ÷ quota − 1 over its reports (each capped at
    /// <see cref="FixAnteOptions.LagFixMaxSlack"/>; the envelope rises at once to a bigger jump and loses
    /// 1/<see cref="FixAnteOptions.LagFixSlackReports"/> of itself with every report that brought records or moved the
    /// shard, so a shard that only gets no-op fills loses its slack). 0 until measured, or when
    /// <see cref="FixAnteOptions.LagFixSlack"/> is off.
    /// </summary>
    public long LagFixSlackOf(int shard) =>
        _options.LagFixSlack && _jumpEnvelope[shard] > 0 ? (_jumpEnvelope[shard] + JUMP_SCALE / 2) / JUMP_SCALE : 0;

    /// <summary>Cuts a shard has completed according to its reports.</summary>
    public long CompletedCutOf(int shard) => History.Count == 0 ? 0 : History.CompletedCut(shard, _durableSlots[shard]);

    /// <summary>
    /// Decides window 0 if no window exists yet (Fix-Ante mode). Call once when the sequencer starts; the new window is
    /// in <paramref name="output"/> and must be persisted before it is sent.
    /// </summary>
    public void Initialize(SequencerOutput output)
    {
        if (_options.Mode == OrderingMode.FixAnte && History.Count == 0)
        {
            var quotas = ImmutableArray.CreateRange(Enumerable.Repeat(_options.InitialQuota, ShardCount));
            var first = new WindowConfig(0, 0, 0, _options.CutsPerWindow, quotas, layout: _options.CutLayout);
            History.Add(first);
            output.NewWindows.Add(first);
        }
    }

    /// <summary>Applies one report. Deterministic: depends only on the state and the report.</summary>
    public void Apply(in ShardReport report, SequencerOutput output)
    {
        if (report.Control != ShardControl.None)
        {
            var waitingBefore = AnyWaiting;
            if (report.Control == ShardControl.Trim)
            {
                TrimBelow(report.RealRecords);
                return;
            }

            ApplyControl(report.Control, report.Shard, output, report.Control is ShardControl.Fail or ShardControl.Join ? report.RealRecords : long.MinValue);
            output.WaitingChanged = waitingBefore != AnyWaiting;
            return;
        }

        if ((uint)report.Shard >= (uint)ShardCount)
        {
            throw new ArgumentOutOfRangeException(nameof(report), report.Shard, $"Unknown shard {report.Shard}; the log has {ShardCount} shards.");
        }

        var s = report.Shard;
        if (report.ReportSeq <= _appliedSeq[s])
        {
            output.Duplicate = true;
            return;
        }

        _appliedSeq[s] = report.ReportSeq;
        ReportsApplied++;
        if (_departed[s] && report.KnownWindows < History.Count)
        {
            output.BehindShards.Add(s);
        }

        // The latest report's count, not the highest ever: a new leader of a replicated shard may know fewer windows
        // than the deposed one did, and must be sent the ones it lacks.
        _knownWindows[s] = report.KnownWindows;
        var completedBefore = _options.Mode == OrderingMode.FixAnte && History.Count > 0 ? History.CompletedCut(s, _durableSlots[s]) : 0;
        if (report.DurableSlots > _durableSlots[s])
        {
            _durableSlots[s] = report.DurableSlots;
        }

        if (_latest[s] == default || report.TimestampMicros < _latest[s].Micros || report.RealRecords < _latest[s].Records)
        {
            // First report, or the shard restarted with another clock: measure from here.
            _rateMarks[s].Clear();
            _rateMarks[s].Enqueue((report.TimestampMicros, report.RealRecords));
        }

        _latest[s] = (report.TimestampMicros, report.RealRecords);

        if (report.FixedLag)
        {
            LagFixesAcknowledged++;
        }

        if (report.Waiting != _waiting[s])
        {
            var before = AnyWaiting;
            _waiting[s] = report.Waiting;
            _waitingCount += report.Waiting ? 1 : -1;
            output.WaitingChanged = before != AnyWaiting;
        }

        if (_options.Mode == OrderingMode.Scalog)
        {
            ApplyScalog(s, output);
            return;
        }

        if (History.Count == 0)
        {
            throw new InvalidOperationException("Initialize must decide window 0 before reports are applied in Fix-Ante mode.");
        }

        MeasureJump(s, report.RealRecords, completedBefore);
        if (_options.Grounding)
        {
            CountStrike(s);
        }

        AdvanceFixAnte(output);
    }

    private void AdvanceFixAnte(SequencerOutput output)
    {
        while (true)
        {
            var committed = long.MaxValue;
            var leader = 0L;
            for (var i = 0; i < ShardCount; i++)
            {
                committed = Math.Min(committed, History.CompletedCut(i, _durableSlots[i]));
                leader = Math.Max(leader, History.LeadCut(i, _durableSlots[i]));
            }

            if (committed > CommittedCut)
            {
                CommittedCut = committed;
                output.CommitAdvanced = true;
            }

            // Lease windows: the next configuration is decided once every shard passed the middle of the newest window;
            // at once when a shard waits to join and only the current window is known (its first slots then come as
            // early as the current window allows).
            var last = History.Last!;
            if (CommittedCut >= last.FirstCut + last.CutsPerWindow / 2 || (AnyPending(_joining) && CommittedCut >= last.FirstCut) || AnyPending(_failing))
            {
                var waitingBefore = AnyWaiting;
                var (quotas, factor) = NextQuotas(last);
                var (departed, voids) = TakeMembershipChanges(quotas);
                var next = last.Next(quotas, cutIntervalFactor: factor, layout: _options.CutLayout, departed: departed, voids: voids);
                History.Add(next);
                output.NewWindows.Add(next);
                output.WaitingChanged |= waitingBefore != AnyWaiting;
                continue; // zero-quota shards may complete further cuts with the new window
            }

            if (_options.LagFixEnabled)
            {
                IssueLagFixes(leader, output);
            }

            return;
        }
    }

    /// <summary>
    /// The fallback when nothing moved for a while (the host decides when, from its clock): every shard behind the
    /// leading shard is told to fill up to it, and a re-broadcast of the committed state is requested, which also
    /// repairs lost notices.
    /// </summary>
    public void EvaluateFallback(SequencerOutput output)
    {
        if (History.Count == 0)
        {
            return;
        }

        var leader = LeadingCut();
        for (var s = 0; s < ShardCount; s++)
        {
            if (_options.Mode == OrderingMode.FixAnte && History.CompletedCut(s, _durableSlots[s]) < leader)
            {
                _lagFixTarget[s] = Math.Max(_lagFixTarget[s], leader);
                LagFixesIssued++;
                output.LagFixes.Add((s, leader));
            }
        }

        output.CommitAdvanced = true;
    }

    /// <summary>
    /// Folds the cuts of new records a shard's report brought into its jump envelope. Only real records make a jump:
    /// no-op fills (deadline or lag-fix) are not the shard's own records, which are what a leaner lag-fix waits for. A
    /// report that moved the shard's completed cut with no new record (a fill) is a jump of 0, so the slack of a shard
    /// without records fades and it is filled up to the leader again; a report that moved nothing (retransmission,
    /// waiting change) does not count. The first report of a shard (and one after a restart, whose count went back)
    /// only sets the baseline. Depends only on the reports and the decided windows (replicas agree).
    /// </summary>
    private void MeasureJump(int shard, long realRecords, long completedBefore)
    {
        var last = _jumpRecords[shard];
        _jumpRecords[shard] = realRecords;
        var completed = History.CompletedCut(shard, _durableSlots[shard]);
        if (last < 0 || realRecords < last || (realRecords == last && completed <= completedBefore))
        {
            return;
        }

        var cfg = History[Math.Max(History.First, History.WindowOfCut(Math.Min(completed, History.KnownEndCut - 1)))];
        var quota = cfg.QuotaOf(shard);
        if (quota == 0)
        {
            return;
        }

        // Cuts beyond the first: a shard whose reports bring one cut at a time keeps pace report by report and needs no
        // slack beyond the threshold; only reports that bring several cuts at once (client batches, group commits) do.
        var jump = Math.Min(Math.Max(0, (realRecords - last) * JUMP_SCALE / quota - JUMP_SCALE), _options.LagFixMaxSlack(cfg.CutsPerWindow) * JUMP_SCALE);
        var envelope = _jumpEnvelope[shard];
        _jumpEnvelope[shard] = envelope < 0 ? jump : Math.Max(jump, envelope - envelope / _options.LagFixSlackReports);
    }

    /// <summary>How far the leading shard leads by its own slots (<see cref="WindowHistory.LeadCut"/>).</summary>
    private long LeadingCut()
    {
        var leader = 0L;
        for (var s = 0; s < ShardCount; s++)
        {
            leader = Math.Max(leader, History.LeadCut(s, _durableSlots[s]));
        }

        return leader;
    }

    /// <summary>
    /// Lag-fix. Each shard s has a slack: the cuts its own next report may bring (<see cref="LagFixSlackOf"/>; 0 with
    /// slack off, which is Belfast's rule, or for a shard without records). A shard that keeps pace is up to one such
    /// jump behind the leader, so s lags only when it is at least the threshold behind the leader minus its slack, and is
    /// filled only to that point (never below its completed cut plus the threshold): its own next records then complete
    /// the leader's cut rather than landing beyond it. Filling it up to the leader would make it, once its next records
    /// land, the leader the others are filled up to in turn, and the cuts would run at the pace of the latest flush.
    /// A shard is told again only once its target moved the threshold past the last one it was given.
    /// </summary>
    private void IssueLagFixes(long leader, SequencerOutput output)
    {
        var cfg = History[Math.Max(History.First, History.WindowOfCut(Math.Min(leader, History.KnownEndCut - 1)))];
        var threshold = _options.LagFixThreshold(cfg.CutsPerWindow);
        for (var s = 0; s < ShardCount; s++)
        {
            var completed = History.CompletedCut(s, _durableSlots[s]);
            var target = leader - LagFixSlackOf(s);
            if (completed + threshold <= target && _lagFixTarget[s] + threshold <= target)
            {
                _lagFixTarget[s] = target;
                LagFixesIssued++;
                output.LagFixes.Add((s, target));
            }
        }
    }

    /// <summary>
    /// Next-window quotas and cut interval. Each shard's rate (records over time, both from its own reports) is measured
    /// from the shard's position at an earlier decision (a mark) at least the measuring span back
    /// (<see cref="FixAnteOptions.RateMeasureSpanMicros"/>), or from the oldest mark kept: when windows are decided
    /// in quick succession (the cuts race because some quota is far too small), a rate over the few milliseconds since
    /// the previous decision is mostly the luck of which client batch landed when, and a quota set from it makes the
    /// cuts race even more. The cut interval is T_ord times the smallest power of two (at most
    /// <see cref="FixAnteOptions.MaxCutIntervalFactor"/>) at which an average shard brings
    /// <see cref="FixAnteOptions.MinRecordsPerCut"/> records per cut, so low rates are not mostly no-ops; each quota is
    /// then the shard's rate times the cut interval. Integer and double arithmetic on the reports only: replicas agree.
    /// </summary>
    private (ImmutableArray<int> Quotas, int Factor) NextQuotas(WindowConfig last)
    {
        var tOrdSeconds = _options.OrderingInterval.TotalSeconds;
        var span = _options.RateMeasureSpanMicros(last.CutsPerWindow);
        Span<double> rates = stackalloc double[ShardCount];
        var measured = 0;
        var total = 0.0;
        for (var s = 0; s < ShardCount; s++)
        {
            rates[s] = double.NaN;
            var marks = _rateMarks[s];
            if (!_options.RateBasedQuotas || marks.Count == 0 || _departed[s] || _leaving[s])
            {
                continue;
            }

            var (m1, r1) = _latest[s];
            (long Micros, long Records) from = default, newest = default;
            var first = true;
            foreach (var mark in marks)
            {
                if (first || mark.Micros <= m1 - span)
                {
                    from = mark; // the oldest, or the newest one far enough back
                }

                first = false;
                newest = mark;
            }

            var (m0, r0) = from;
            if (m1 > newest.Micros && m1 > m0)
            {
                rates[s] = (r1 - r0) * 1_000_000.0 / (m1 - m0);
                measured++;
                total += rates[s];
            }

            if (m1 > newest.Micros)
            {
                if (marks.Count == RATE_MARKS)
                {
                    marks.Dequeue();
                }

                marks.Enqueue(_latest[s]);
            }
        }

        var factor = last.CutIntervalFactor;
        var members = 0;
        for (var s = 0; s < ShardCount; s++)
        {
            members += _departed[s] || _leaving[s] ? 0 : 1;
        }

        if (measured == members)
        {
            var perShardPerTOrd = total / members * tOrdSeconds;
            factor = 1;
            while (factor < _options.MaxCutIntervalFactor && perShardPerTOrd * factor < _options.MinRecordsPerCut)
            {
                factor = Math.Min(_options.MaxCutIntervalFactor, factor * 2);
            }
        }

        var quotas = ImmutableArray.CreateBuilder<int>(ShardCount);
        for (var s = 0; s < ShardCount; s++)
        {
            if (_leaving[s] || (_departed[s] && !_joining[s]))
            {
                quotas.Add(0);
                continue;
            }

            if (_joining[s])
            {
                quotas.Add(_options.InitialQuota);
                continue;
            }

            var old = last.QuotaOf(s);
            var q = Math.Max(old, _options.MinQuota);
            if (!double.IsNaN(rates[s]))
            {
                var target = (int)Math.Clamp(Math.Round(rates[s] * tOrdSeconds * factor), _options.MinQuota, _options.MaxQuota);
                if (factor != last.CutIntervalFactor || Math.Abs(target - old) > _options.QuotaTolerance * old)
                {
                    q = target;
                }
            }

            // A backlog: slots the shard holds durably beyond every decided window (a burst its quota could not take,
            // or the records it had when the appends stopped). A rate measured from here on no longer sees them, so
            // without this a shard whose load stopped drained them at the minimum quota, one slot per cut; the next
            // window gives it room for all of them. (Part of rate-based quotas: fixed quotas stay fixed.)
            var backlog = _durableSlots[s] - History.KnownSlots(s);
            if (_options.RateBasedQuotas && backlog > (long)q * last.CutsPerWindow)
            {
                q = (int)Math.Min(_options.MaxQuota, (backlog + last.CutsPerWindow - 1) / last.CutsPerWindow);
            }

            quotas.Add(q);
        }

        if (_options.Grounding)
        {
            ApplyGrounding(quotas);
        }

        return (quotas.MoveToImmutable(), factor);
    }

    // Scalog baseline: once every shard has reported since the last cut, the next cut takes whatever each holds.
    // A Scalog cut is a one-cut window whose quotas are the per-shard increments, so positions use the same arithmetic.
    private void ApplyScalog(int shard, SequencerOutput output)
    {
        _reportedSinceCut[shard] = true;
        for (var s = 0; s < ShardCount; s++)
        {
            if (!_reportedSinceCut[s] && !_departed[s])
            {
                return;
            }
        }

        Array.Clear(_reportedSinceCut);
        var quotas = ImmutableArray.CreateBuilder<int>(ShardCount);
        var departed = ImmutableArray.CreateBuilder<int>();
        var total = 0L;
        for (var s = 0; s < ShardCount; s++)
        {
            // A departed shard's records since the last cut before it left get no position (its appends fail).
            var delta = _departed[s] ? 0 : (int)Math.Min(int.MaxValue, _durableSlots[s] - _cutBase[s]);
            quotas.Add(delta);
            total += delta;
            if (_departed[s])
            {
                departed.Add(s);
            }
        }

        if (total == 0)
        {
            return;
        }

        for (var s = 0; s < ShardCount; s++)
        {
            _cutBase[s] += quotas[s];
        }

        var q = quotas.MoveToImmutable();
        var cut = History.Last is { } last ? last.Next(q, 1, layout: CutLayout.Blocked, departed: departed.ToImmutable()) : new WindowConfig(0, 0, 0, 1, q, departed: departed.ToImmutable());
        History.Add(cut);
        output.NewWindows.Add(cut);
        CommittedCut = cut.EndCut;
        output.CommitAdvanced = true;
    }
}
