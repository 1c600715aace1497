namespace SpecLog.FixAnte;

/// <summary>
/// The deterministic part of a shard: slot assignment, when to report, when and how many no-op slots to fill,
/// how far speculation may go and which slots are committed. The host (the shard grain) does the I/O and passes
/// the time in, in microseconds of its own monotonic clock.
/// </summary>
public sealed class ShardCore
{
    private readonly FixAnteOptions _options;
    private readonly long _retransmitMicros;
    private long _nextTickMicros = long.MinValue;
    private long _seenCut = -1;
    private long _noticeVersion;
    private long _completedMicros = long.MinValue / 2;
    private long _lastReportMicros = long.MinValue / 2;
    private long _lastProgressMicros = long.MinValue / 2;
    private long _lastNoticeMicros;
    private long _lagFixAnswerSlot = -1;
    private long _lastRecordSlot = -1;
    private bool _lastReportedWaiting;
    private long _idleSinceMicros = long.MinValue / 2;
    private long _windowWaitSince = -1;

    /// <summary>Creates the core of shard <paramref name="shardId"/>.</summary>
    public ShardCore(int shardId, FixAnteOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegative(shardId);
        options.Validate();
        ShardId = shardId;
        _options = options;
        _retransmitMicros = Math.Max(5_000, (long)(options.OrderingInterval.TotalMilliseconds * 1000 * 20));
    }

    /// <summary>This shard's id.</summary>
    public int ShardId { get; }

    /// <summary>The windows this shard knows.</summary>
    public WindowHistory History { get; } = new();

    /// <summary>Slots handed out so far (durable or on their way to disk).</summary>
    public long AssignedSlots { get; private set; }

    /// <summary>Slots that are durable.</summary>
    public long DurableSlots { get; private set; }

    /// <summary>Real records that are durable.</summary>
    public long DurableRecords { get; private set; }

    /// <summary>No-op slots handed out so far.</summary>
    public long NoOpSlots { get; private set; }

    /// <summary>Cuts below this are committed by the ordering layer.</summary>
    public long CommittedCut { get; private set; }

    /// <summary>This shard's slots below this are committed: their appends may be acknowledged.</summary>
    public long CommittedSlots { get; private set; }

    /// <summary>The cut count in the last report sent.</summary>
    public long LastReportedCut { get; private set; } = -1;

    /// <summary>The sequence number of the last report sent.</summary>
    public long ReportSeq { get; private set; } = -1;

    /// <summary>Reports sent.</summary>
    public long ReportsSent { get; private set; }

    /// <summary>Lag-fix signals that made this shard fill no-ops.</summary>
    public long LagFixes { get; private set; }

    /// <summary>
    /// Microseconds (host clock) this shard spent with durable slots beyond the windows it knows: records it could not
    /// position, and so not deliver, until the next window arrived. Counted only from calls that pass the time; a wait
    /// still in progress is included up to the last such call.
    /// </summary>
    public long WindowWaitMicros { get; private set; }

    /// <summary>
    /// True while this shard holds a real record whose cut is not committed yet (records of a departed shard beyond
    /// its last slot never will be: they do not count).
    /// </summary>
    public bool HasUncommittedRecords => Math.Min(_lastRecordSlot, FinalSlots - 1) >= CommittedSlots;

    /// <summary>
    /// Whether this shard has left the log (<see cref="ShardControl.Leave"/>): the windows it knows give it no slot
    /// from <see cref="FinalSlots"/> on, for good. It keeps serving reads; appends must be refused.
    /// </summary>
    public bool Departed { get; private set; }

    /// <summary>
    /// The number of slots this shard owns in the whole log once it has departed (its records at or beyond this slot
    /// never get a position); <see cref="long.MaxValue"/> while it is a member.
    /// </summary>
    public long FinalSlots { get; private set; } = long.MaxValue;

    private long _lastReportedDurable = -1;

    /// <summary>
    /// Whether this shard departed because the ordering layer declared it failed (rather than removed it): it asks to
    /// rejoin once it serves again (<see cref="ShardControl.Join"/> with its <see cref="AssignedSlots"/>).
    /// </summary>
    public bool FailedOut { get; private set; }

    /// <summary>Windows that told this shard it rejoined after a failure.</summary>
    public long Rejoins { get; private set; }

    private void NoteDeparture()
    {
        if (History.Last is not { } last)
        {
            return;
        }

        if (!Departed && last.HasDeparted(ShardId))
        {
            // A shard declared failed (it lost every replica, or stopped answering) that comes back finds its slots
            // from what the sequencer had heard of voided: its last slot is before them.
            var known = History.KnownSlots(ShardId);
            var failure = History.FailureVoidOf(ShardId);
            FailedOut = failure is { } f && f.To >= known;
            Departed = true;
            FinalSlots = FailedOut ? Math.Min(known, failure!.Value.From) : known;
        }
        else if (Departed && !last.HasDeparted(ShardId))
        {
            // A failed shard rejoined: it has slots again from the window that said so, after the void of that window
            // (the host skips its slots to there with no-ops; see SlotsToSkip).
            Departed = false;
            FailedOut = false;
            FinalSlots = long.MaxValue;
            Rejoins++;
        }
    }

    /// <summary>
    /// No-op slots the shard must write before its next record: after a rejoin, its slots up to the end of the rejoin's
    /// void (what it held when it asked, and the slots it had no quota for meanwhile) are no-ops whatever it holds.
    /// </summary>
    public long SlotsToSkip => Departed ? 0 : History.SkipVoid(ShardId, AssignedSlots) - AssignedSlots;

    /// <summary>Whether the ordering layer said, in its latest notice, that some shard waits for cuts (true until told).</summary>
    public bool OthersWaiting { get; private set; } = true;

    /// <summary>
    /// Whether the shard must keep cuts moving (fill at deadlines, report, retransmit): it or another shard waits for a
    /// commit, or idle quiescence is off. A departed shard whose every slot is committed is never active again.
    /// </summary>
    public bool Active => !(Departed && CommittedSlots >= FinalSlots) && (HasUncommittedRecords || OthersWaiting || !_options.QuiesceWhenIdle);

    /// <summary>
    /// Slots that may be delivered to subscribers now: durable and positioned (Fix-Ante; never past a window the shard
    /// does not know), or durable and committed (Scalog baseline).
    /// </summary>
    public long DeliverableSlots => _options.Mode == OrderingMode.FixAnte
        ? Math.Min(Math.Min(DurableSlots, History.KnownSlots(ShardId)), FinalSlots)
        : Math.Min(DurableSlots, CommittedSlots);

    /// <summary>
    /// Restores the state recovered from disk: durable slots and records, and the known windows. Report sequence numbers
    /// continue from <paramref name="firstReportSeq"/>, which must exceed every number an earlier incarnation of the shard
    /// used (the host passes its clock in microseconds), so the ordering layer does not take new reports for duplicates.
    /// </summary>
    public void Recover(long durableSlots, long durableRecords, long noOpSlots, IEnumerable<WindowConfig> windows, long firstReportSeq = 0, WindowBase? start = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(firstReportSeq);
        if (start is not null)
        {
            History.StartAt(start); // the log was trimmed: the history starts there
        }

        History.AddRange(windows);
        NoteDeparture();
        ReportSeq = Math.Max(ReportSeq, firstReportSeq - 1);
        AssignedSlots = DurableSlots = durableSlots;
        DurableRecords = durableRecords;
        _lastRecordSlot = durableRecords > 0 ? durableSlots - 1 : -1; // conservatively uncommitted until told
        NoOpSlots = noOpSlots;
    }

    /// <summary>Hands out the slot of the next record.</summary>
    public long AssignRecord()
    {
        _lastRecordSlot = AssignedSlots;
        return AssignedSlots++;
    }

    /// <summary>Hands out <paramref name="count"/> consecutive no-op slots; returns the first.</summary>
    public long AssignNoOp(long count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        var first = AssignedSlots;
        AssignedSlots += count;
        NoOpSlots += count;
        return first;
    }

    /// <summary>
    /// Records that slots below <paramref name="slots"/> are durable, of which <paramref name="records"/> are real records.
    /// <paramref name="nowMicros"/> (host clock) feeds <see cref="WindowWaitMicros"/>; a negative value leaves it alone.
    /// </summary>
    public void OnDurable(long slots, long records, long nowMicros = -1)
    {
        DurableSlots = Math.Max(DurableSlots, slots);
        DurableRecords = Math.Max(DurableRecords, records);
        TrackWindowWait(nowMicros);
    }

    // Fix-Ante only: a shard waits for a window while durable slots lie beyond the windows it knows.
    private void TrackWindowWait(long nowMicros)
    {
        if (nowMicros < 0 || _options.Mode != OrderingMode.FixAnte)
        {
            return;
        }

        var waiting = History.Count > 0 && DurableSlots > History.KnownSlots(ShardId);
        if (_windowWaitSince >= 0)
        {
            WindowWaitMicros += Math.Max(0, nowMicros - _windowWaitSince);
            _windowWaitSince = waiting ? nowMicros : -1;
        }
        else if (waiting)
        {
            _windowWaitSince = nowMicros;
        }
    }

    /// <summary>
    /// Whether a report is due now. Fix-Ante: as soon as a cut is newly complete (event driven), or to retransmit when the
    /// ordering layer has been silent. Scalog baseline: every T_ord.
    /// </summary>
    public bool ReportDue(long nowMicros)
    {
        // Stopping to wait is news (the others may quiesce); starting to wait travels with the report of the cut the
        // record completes, or of the no-op fill that completes it.
        var waitingChanged = _lastReportedWaiting && !HasUncommittedRecords;
        if (_options.Mode == OrderingMode.FixAnte && waitingChanged && nowMicros - _idleSinceMicros < StopWaitingDelayMicros)
        {
            // Said only once the shard stayed without uncommitted records for a cut interval: at steady low rates the
            // next record usually comes first and the news would be stale (half the reports at 2,000 appends/s were
            // such), and an idle log quiesces one interval later.
            waitingChanged = false;
        }

        if (_options.Mode == OrderingMode.Scalog)
        {
            return (Active || waitingChanged) && nowMicros - _lastReportMicros >= (long)(_options.OrderingInterval.TotalMilliseconds * 1000);
        }

        if (History.Count == 0)
        {
            return nowMicros - _lastReportMicros >= _retransmitMicros;
        }

        // Reports are coalesced: one carries every cut completed since the previous one, and they are at least the
        // report spacing apart, so a shard costs the ordering layer about one command per cut interval at any load.
        return (CutReportPending && nowMicros - _lastProgressMicros >= ReportSpacingMicros)
            || LagFixAnswerReady
            || waitingChanged
            || (Active && nowMicros - _lastNoticeMicros >= _retransmitMicros && nowMicros - _lastReportMicros >= _retransmitMicros);
    }

    /// <summary>
    /// Whether a completed cut waits to be reported (Fix-Ante). A departed shard that has reported every slot it owns
    /// has nothing left to tell: its completed cut still grows with every window, which gives it no slot.
    /// </summary>
    private bool CutReportPending => History.Count > 0
        && History.CompletedCut(ShardId, DurableSlots) > LastReportedCut
        && !(Departed && _lastReportedDurable >= FinalSlots);

    /// <summary>Builds the next report and records it as sent.</summary>
    public ShardReport MakeReport(long nowMicros)
    {
        ReportSeq++;
        ReportsSent++;
        _lastReportMicros = nowMicros;
        var cut = History.Count == 0 ? 0 : History.CompletedCut(ShardId, DurableSlots);
        if (cut > LastReportedCut)
        {
            // Progress: the spacing of cut reports runs from here. A report that only says the shard stopped waiting
            // (or retransmits) carries no cut, so it does not hold back the report of the next cut: at low rates every
            // record's report used to wait most of a cut interval behind the previous record's stop-waiting report.
            _lastProgressMicros = nowMicros;
        }

        LastReportedCut = cut;
        var fixedLag = LagFixAnswerReady;
        if (fixedLag)
        {
            _lagFixAnswerSlot = -1;
        }

        _lastReportedWaiting = HasUncommittedRecords;
        _lastReportedDurable = DurableSlots;
        return new ShardReport(ShardId, ReportSeq, DurableSlots, DurableRecords, nowMicros, History.Count, fixedLag, _lastReportedWaiting);
    }

    /// <summary>
    /// No-op slots to fill now; 0 if none. Fills exactly to the end of the current cut. With the cut clock
    /// (<see cref="NoOpFillPolicy.CutClock"/>): at the first call after each tick (a multiple of the cut interval on the
    /// host clock, the same instants on every shard), once NoOpDeadlineFactor intervals (one for an empty cut) passed
    /// since the shard's last completed cut. With
    /// <see cref="NoOpFillPolicy.AfterLastReport"/> (Belfast): once NoOpDeadlineFactor cut intervals passed since the
    /// last report with the current cut still short of its quota.
    /// </summary>
    public long NoOpsForDeadline(long nowMicros)
    {
        if (_options.Mode != OrderingMode.FixAnte || History.Count == 0 || !Active)
        {
            return 0;
        }

        var cut = History.CompletedCut(ShardId, AssignedSlots);
        if (_options.NoOpFill == NoOpFillPolicy.CutClock)
        {
            if (cut != _seenCut)
            {
                // A cut completed (seen now: assignments carry no time).
                _seenCut = cut;
                _completedMicros = nowMicros;
            }

            if (nowMicros < _nextTickMicros)
            {
                return 0;
            }

            var period = CutIntervalMicros;
            var tick = nowMicros / period * period;
            _nextTickMicros = tick + period;
            if (cut >= History.KnownEndCut)
            {
                return 0; // the next window is not known yet
            }

            // Belfast's deadline after the last completed cut, taken at the next tick so that every shard that fell
            // short fills at the same instants: NoOpDeadlineFactor intervals for a cut under way, one interval for an
            // empty one (an idle shard then marches one cut per tick, as everyone waits for it).
            var empty = AssignedSlots == History.SlotsBeforeCut(ShardId, cut);
            var deadline = empty ? period - period / 16 : DeadlineMicros;
            if (nowMicros - _completedMicros < deadline)
            {
                return 0;
            }

            _seenCut = cut + 1;
            _completedMicros = tick;
            return History.SlotsBeforeCut(ShardId, cut + 1) - AssignedSlots;
        }

        if (nowMicros - _lastReportMicros < DeadlineMicros)
        {
            return 0;
        }

        if (cut > LastReportedCut || cut >= History.KnownEndCut)
        {
            return 0; // what is on its way to disk completes a cut, or the next window is not known yet
        }

        return History.SlotsBeforeCut(ShardId, cut + 1) - AssignedSlots;
    }

    /// <summary>
    /// When (host clock, µs) <see cref="NoOpsForDeadline"/> may next return slots, or a held-back report becomes due:
    /// the next cut-clock tick (or the no-op deadline after the last report), or the end of the report spacing when a
    /// completed cut waits to be reported. The host wakes up then rather than polling.
    /// </summary>
    public long NextDeadlineMicros
    {
        get
        {
            var next = _options.NoOpFill == NoOpFillPolicy.CutClock ? _nextTickMicros : _lastReportMicros + DeadlineMicros;
            if (_options.Mode == OrderingMode.FixAnte && CutReportPending)
            {
                next = Math.Min(next, _lastProgressMicros + ReportSpacingMicros);
            }

            if (_options.Mode == OrderingMode.FixAnte && _lastReportedWaiting && !HasUncommittedRecords)
            {
                next = Math.Min(next, _idleSinceMicros + StopWaitingDelayMicros);
            }

            return next;
        }
    }

    /// <summary>
    /// The cut interval (µs) of the window the shard is filling now: T_ord times the window's
    /// <see cref="WindowConfig.CutIntervalFactor"/>. It is the cut clock's period.
    /// </summary>
    public long CutIntervalMicros
    {
        get
        {
            if (History.Count == 0)
            {
                return _options.OrderingIntervalMicros;
            }

            var cut = Math.Min(History.CompletedCut(ShardId, AssignedSlots), History.KnownEndCut - 1);
            return _options.OrderingIntervalMicros * History[Math.Max(History.First, History.WindowOfCut(cut))].CutIntervalFactor;
        }
    }

    private long DeadlineMicros => Math.Max(1, (long)(_options.NoOpDeadlineFactor * CutIntervalMicros));

    private long StopWaitingDelayMicros => CutIntervalMicros;

    private long ReportSpacingMicros => (long)(_options.ReportSpacingFactor * CutIntervalMicros);

    /// <summary>
    /// Takes a lag-fix signal: returns the no-op slots to fill, in one entry, to complete every cut below
    /// <paramref name="targetCut"/>, and arms the answer (the next report once those slots are durable carries FixedLag).
    /// </summary>
    public long NoOpsForLagFix(long targetCut)
    {
        if (_options.Mode != OrderingMode.FixAnte || History.Count == 0)
        {
            return 0;
        }

        // The answer (a report with FixedLag) is owed once every slot below the target is durable, whether this call
        // fills them or they were already on their way to disk.
        var end = History.SlotsBeforeCut(ShardId, Math.Min(targetCut, History.KnownEndCut));
        _lagFixAnswerSlot = Math.Max(_lagFixAnswerSlot, end);
        var n = end - AssignedSlots;
        if (n <= 0)
        {
            return 0;
        }

        LagFixes++;
        return n;
    }

    private bool LagFixAnswerReady => _lagFixAnswerSlot >= 0 && DurableSlots >= _lagFixAnswerSlot;

    /// <summary>
    /// Takes a commit notice: windows the shard lacked, the committed cut, and whether any shard waits for cuts.
    /// Returns true if new windows were learned.
    /// </summary>
    /// <remarks>
    /// <paramref name="stateVersion"/> orders notices by the sequencer state they describe (reports applied; every
    /// replica of the ordering layer has the same value at the same state). Cuts and windows only ever grow, so a stale
    /// notice cannot move them back, but its waiting flag could: a notice from a pilot that executes behind the other
    /// may say "nobody waits" after a newer one said the opposite, and the shard would stop filling while others wait.
    /// The flag of a notice older than the newest seen is ignored (0 = unversioned, always taken).
    /// </remarks>
    public bool OnCommitted(long committedCut, IEnumerable<WindowConfig> windows, long nowMicros, bool othersWaiting = true, long stateVersion = 0, WindowBase? start = null)
    {
        if (start is not null)
        {
            History.StartAt(start); // it knew fewer windows than the ordering layer still holds (the log was trimmed past them)
        }

        _lastNoticeMicros = nowMicros;
        if (stateVersion == 0 || stateVersion >= _noticeVersion)
        {
            _noticeVersion = Math.Max(_noticeVersion, stateVersion);
            OthersWaiting = othersWaiting;
        }

        var added = History.AddRange(windows) > 0;
        NoteDeparture();
        if (committedCut > CommittedCut)
        {
            CommittedCut = Math.Min(committedCut, History.KnownEndCut);
        }

        // Every cut below a truncated history's first is committed (the log was trimmed past it, and only committed
        // positions are trimmed).
        CommittedCut = Math.Max(CommittedCut, History.FirstCut);
        var wasWaiting = HasUncommittedRecords;
        CommittedSlots = History.Count == 0 ? 0 : History.SlotsBeforeCut(ShardId, CommittedCut);
        if (wasWaiting && !HasUncommittedRecords)
        {
            _idleSinceMicros = nowMicros;
        }

        TrackWindowWait(nowMicros);
        return added;
    }

    /// <summary>For diagnostics: the shard's clock when it last reported and last took a commit notice (µs).</summary>
    public (long LastReportMicros, long LastNoticeMicros) Clocks => (_lastReportMicros, _lastNoticeMicros);

    /// <summary>The confirmed GSN prefix: every GSN below it is committed.</summary>
    public long CommittedGsn => History.Count == 0 ? 0 : History.GsnOfCut(CommittedCut);
}
