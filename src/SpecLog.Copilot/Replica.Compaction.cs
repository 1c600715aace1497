namespace SpecLog.Copilot;

/// <remarks>
/// <para><b>Compaction.</b> An entry may be forgotten once no replica can ever need it from this one and no message about
/// it can change anything here. <see cref="SafeCompactionPoint"/> bounds that point from two sides:</para>
/// <list type="bullet">
/// <item>Every replica has committed it durably (the committed prefix each one reports in its heartbeats, sent only once
/// its records are durable, and never going back) and this replica executed it: nobody will ask for it in a catch-up,
/// recover it (a recoverer holds it committed), or include it in a view change (which starts at the committed prefix).</item>
/// <item>The compatibility check and the recovery's conflict lists of the <i>other</i> log still read entries of this
/// one: a FastAccept of P.i depending on Q.d is refused if some Q.k, k &gt; d, depends on something before P.i. A
/// FastAccept proposed long ago with an old dependency d can arrive (a retransmission, a delayed duplicate) after the
/// Q.k above d were compacted; judged without them it would pass, and P.i could commit on the fast path incompatible
/// with a committed Q.k. (n = 3: P proposes P.5 → Q.2, reaching nobody yet; Q.3 → P.4 commits with Q and A; all
/// commit and execute Q.3; A compacts it; P.5's retransmission reaches A, which answers OK, and P.5 → Q.2 commits fast.)
/// So log L is compacted below B only once every entry of the other log O that may carry a dependency below B - 1 is
/// committed here (then a FastAccept or Prepare of it is answered with its commit, never checked). A pilot's proposal
/// depends on the pilot's highest known entry of L, at least its committed prefix of L minus one; every later value of
/// the entry (slow path, recovery) depends on at least as much, or is a no-op. A heartbeat of replica Y reporting
/// committed prefix C of L and highest known entry K of O therefore says: Y's proposals made after it depend on L's
/// entries from C - 1 on, and those made before it (which its own acceptor recorded first) lie at or below O.K. Once
/// this replica's committed prefix of O passes K, such a heartbeat lets L be compacted below C as far as Y is
/// concerned. Each replica's heartbeats are kept (a few, dominated ones dropped) until they qualify.</item>
/// </list>
/// <para>The executor, proposer, recovery and catch-up only ever read entries at or above the heads and committed
/// prefixes, which the base never passes; a FastAccept, Accept, Prepare or Commit of a compacted entry is dropped.</para>
/// <para><b>Checkpoint.</b> <see cref="TakeCheckpoint"/> writes the replica's whole durable state as a few records; a
/// replica rebuilt from them (and the records persisted after) resumes with the same acceptor state, the same pilot role
/// a restart from the full record log would give it, and its executor at the checkpoint's heads.</para>
/// </remarks>
public sealed partial class Replica<T>
{
    /// <summary>At most this many not yet qualifying heartbeat facts are kept per replica and log.</summary>
    private const int MaxPendingWatermarks = 32;

    /// <summary>Per log, per replica (this one included): what its heartbeats allow compacting.</summary>
    private readonly Watermark[][] _watermarks;

    /// <summary>The first entry of <paramref name="log"/> still held: entries below it were compacted (0 until then).</summary>
    public long LogBase(int log) => _logs[log].Base;

    /// <summary>
    /// The highest index below which <paramref name="log"/>'s entries may be compacted now: at most this replica's
    /// <see cref="ExecutedThrough"/> and every replica's reported committed prefix (a replica not heard from yet holds it
    /// at 0), and lowered further until the other log's entries that may depend on older entries are committed here
    /// (see the remarks on this file). Never below the current <see cref="LogBase"/>.
    /// </summary>
    public long SafeCompactionPoint(int log)
    {
        if (!ValidLog(log))
        {
            throw new ArgumentOutOfRangeException(nameof(log), log, "The log is 0 or 1.");
        }

        var other = _logs[1 - log];
        NoteWatermark(log, Id, _logs[log].CommittedPrefix, other.MaxKnown);
        var safe = _heads[log];
        foreach (var w in _watermarks[log])
        {
            safe = Math.Min(safe, w.Qualified(other.CommittedPrefix));
        }

        return Math.Max(safe, _logs[log].Base);
    }

    /// <summary>
    /// Drops the acceptor state of each log's entries below its <see cref="SafeCompactionPoint"/>, when at least
    /// <see cref="CopilotOptions.CompactionChunk"/> entries can go at once. Call it between other calls, as often as
    /// convenient (it emits no effects; nothing needs persisting).
    /// </summary>
    /// <returns>The number of entries dropped.</returns>
    public long Compact()
    {
        long dropped = 0;
        for (var log = 0; log < 2; log++)
        {
            var safe = SafeCompactionPoint(log);
            if (safe - _logs[log].Base >= _options.CompactionChunk)
            {
                dropped += CompactTo(log, safe);
            }
        }

        return dropped;
    }

    /// <summary>
    /// Drops the acceptor state of <paramref name="log"/>'s entries below <paramref name="below"/>, or below the
    /// <see cref="SafeCompactionPoint"/> if that is lower, whatever their number (tests, operator tools).
    /// </summary>
    /// <returns>The number of entries dropped.</returns>
    public long Compact(int log, long below) => CompactTo(log, Math.Min(below, SafeCompactionPoint(log)));

    /// <summary>
    /// Describes this replica's durable state as a few records. The host calls it between other calls, takes its
    /// state-machine snapshot at the same moment (it reflects exactly the entries before the checkpoint's heads), and
    /// persists <see cref="ReplicaCheckpoint{T}.Records"/> with the snapshot in place of every record persisted before
    /// (atomically: the old records may go only once the checkpoint is durable, after every record persisted before it).
    /// A replica constructed from those records followed by the ones persisted later rebuilds the same acceptor state and
    /// executes only the entries from the heads on. Pair it with <see cref="Compact()"/> so the checkpoint stays small.
    /// </summary>
    public ReplicaCheckpoint<T> TakeCheckpoint()
    {
        var header = new CheckpointRecord<T>(_heads[0], _heads[1], _logs[0].Base, _logs[1].Base, new Dictionary<int, long>(_highWater));
        var records = new List<PersistRecord<T>> { header };
        if (_floor is not null)
        {
            // A rebuilt replica keeps its floor (before any pilot record: replaying it clears the pilot role).
            records.Add(new RebuildRecord<T>(_floor));
        }

        for (var log = 0; log < 2; log++)
        {
            var state = _logs[log];
            records.Add(new ViewPromiseRecord<T>(log, state.ViewPromise));

            // Recovery resumes as pilot the owner of a view it activated (or of the initial view); a pilot record is
            // needed only when the view it activated is the one still promised, and not the initial one.
            if (_activated[log] != InitialView(log) && _activated[log] == state.ViewPromise)
            {
                records.Add(new PilotRecord<T>(log, _activated[log]));
            }

            if (state.MaxKnown >= 0)
            {
                records.Add(new KnownSlotRecord<T>(log, state.MaxKnown));
            }
        }

        for (var log = 0; log < 2; log++)
        {
            var state = _logs[log];
            for (var slot = state.Base; slot < state.End; slot++)
            {
                if (state.Get(slot) is { IsBlank: false } s)
                {
                    records.Add(RecordOf(log, slot, s));
                }
            }
        }

        return new ReplicaCheckpoint<T>(header, records);
    }

    private static Ballot InitialView(int log) => new(0, log);

    private static Watermark[] NewWatermarks(int n)
    {
        var list = new Watermark[n];
        for (var r = 0; r < n; r++)
        {
            list[r] = new Watermark();
        }

        return list;
    }

    private void NoteWatermarks(int replica, long committed0, long committed1, long known0, long known1)
    {
        if (replica >= 0 && replica < _n)
        {
            NoteWatermark(0, replica, committed0, known1);
            NoteWatermark(1, replica, committed1, known0);
        }
    }

    /// <summary>Replica <paramref name="replica"/> had committed <paramref name="log"/> up to <paramref name="committed"/> when it knew the other log up to <paramref name="knownOther"/>.</summary>
    private void NoteWatermark(int log, int replica, long committed, long knownOther) =>
        _watermarks[log][replica].Add(committed, _copilotMode ? knownOther : -1); // Multi-Paxos has no dependencies

    private long CompactTo(int log, long target)
    {
        var state = _logs[log];
        if (target <= state.Base)
        {
            return 0;
        }

        var dropped = target - state.Base;
        state.DropBelow(target);
        Counters.SlotsCompacted += dropped;

        // Only proposals still resending their Commit can lie below: every other kind ends when its entry commits.
        foreach (var key in _proposals.Keys.Where(k => k.Log == log && k.Slot < target).ToList())
        {
            _proposals.Remove(key);
        }

        return dropped;
    }

    private void RestoreCheckpoint(CheckpointRecord<T> c)
    {
        ArgumentNullException.ThrowIfNull(c.HighWater, nameof(c));
        if (c.Base0 < 0 || c.Base1 < 0 || c.Base0 > c.Head0 || c.Base1 > c.Head1)
        {
            throw new ArgumentException($"Inconsistent checkpoint: heads {c.Head0}/{c.Head1}, bases {c.Base0}/{c.Base1}.", nameof(c));
        }

        _logs[0].ResetTo(c.Base0);
        _logs[1].ResetTo(c.Base1);
        _heads[0] = c.Head0;
        _heads[1] = c.Head1;
        _highWater.Clear();
        foreach (var (client, seq) in c.HighWater)
        {
            _highWater[client] = seq;
        }
    }

    /// <summary>
    /// Facts (committed prefix of a log, highest known entry of the other log) one replica reported: the highest
    /// committed prefix among those whose known entry this replica has committed since, and the others, waiting.
    /// </summary>
    private sealed class Watermark
    {
        private readonly List<(long Committed, long KnownOther)> _pending = [];
        private long _qualified;

        public void Add(long committed, long knownOther)
        {
            if (committed <= _qualified)
            {
                return;
            }

            foreach (var p in _pending)
            {
                if (p.Committed >= committed && p.KnownOther <= knownOther)
                {
                    return; // an older fact says as much
                }
            }

            _pending.RemoveAll(p => p.Committed <= committed && p.KnownOther >= knownOther);
            if (_pending.Count < MaxPendingWatermarks)
            {
                _pending.Add((committed, knownOther));
            }
            else
            {
                // Keep the oldest facts (they qualify first); the newest slot follows the latest heartbeat.
                _pending[^1] = (committed, knownOther);
            }
        }

        /// <summary>The watermark, given this replica's committed prefix of the other log.</summary>
        public long Qualified(long otherCommitted)
        {
            for (var i = _pending.Count - 1; i >= 0; i--)
            {
                var p = _pending[i];
                if (p.KnownOther < otherCommitted || p.Committed <= _qualified)
                {
                    if (p.KnownOther < otherCommitted)
                    {
                        _qualified = Math.Max(_qualified, p.Committed);
                    }

                    _pending.RemoveAt(i);
                }
            }

            return _qualified;
        }
    }
}
