namespace SpecLog.Consumer;

/// <summary>
/// The heart of <see cref="SpeculativeConsumer{TState, TOutput}"/>, with no I/O: applies records at once, holds their
/// outputs until a confirmation covers them, and rolls the state back on a mis-speculation.
/// </summary>
/// <remarks>
/// <para>
/// Rollback works from snapshots: a copy of the state every <c>snapshotEvery</c> applied records, plus the records
/// applied since the oldest snapshot still needed. To undo everything from GSN <c>g</c> on, the engine restores the
/// newest snapshot taken at or below <c>g</c> and re-applies the kept records below <c>g</c> (their outputs were
/// produced already, so the re-run's are dropped). A mis-speculation never reaches below the confirmed prefix, so the
/// engine keeps only the newest snapshot at or below it and what came after: memory is bounded by the unconfirmed
/// window plus <c>snapshotEvery</c> records.
/// </para>
/// <para>
/// Outputs are released in (GSN, index) order, each exactly once: those of records below <see cref="ReleasedThrough"/>
/// have been released and are never produced again, even when a restart re-applies their records.
/// </para>
/// </remarks>
public sealed class SpeculationEngine<TState, TOutput>
{
    private readonly ApplyRecord<TState, TOutput> _apply;
    private readonly Func<TState, TState> _copy;
    private readonly int _snapshotEvery;
    private readonly OutputBuffer<TOutput> _buffer = new();
    private readonly SlidingList<ConsumedRecord> _kept = new();
    private readonly SlidingList<Snapshot> _snapshots = new();
    private readonly SlidingList<ReleasedOutput<TOutput>> _pending = new();
    private readonly bool _gsnOrdered;
    private int _sinceSnapshot;

    private readonly record struct Snapshot(long Position, TState State);

    /// <summary>
    /// Starts from <paramref name="state"/>, which holds the effect of every record below <paramref name="position"/>;
    /// the outputs of records below <paramref name="releasedThrough"/> (at least <paramref name="position"/>) were
    /// released before and will not be again. With <paramref name="gsnOrdered"/>, records come in GSN order before any
    /// confirmation that covers them (a GSN-ordered subscription), so a confirmed position with no record was a no-op;
    /// without (one shard's records, with confirmations of the whole log), a record may arrive already confirmed.
    /// </summary>
    public SpeculationEngine(TState state, long position, ApplyRecord<TState, TOutput> apply, Func<TState, TState> copy, int snapshotEvery, long releasedThrough = -1, bool gsnOrdered = true)
    {
        ArgumentNullException.ThrowIfNull(apply);
        ArgumentNullException.ThrowIfNull(copy);
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        ArgumentOutOfRangeException.ThrowIfLessThan(snapshotEvery, 1);
        _apply = apply;
        _copy = copy;
        _snapshotEvery = snapshotEvery;
        _gsnOrdered = gsnOrdered;
        State = state;
        NextGsn = position;
        // Outputs are released only for confirmed records: everything below the release point was confirmed.
        ReleasedThrough = Math.Max(position, releasedThrough);
        ConfirmedThrough = ReleasedThrough;
        _snapshots.Add(new Snapshot(position, copy(state)));
    }

    /// <summary>The state with every record applied so far, speculative ones included.</summary>
    public TState State { get; private set; }

    /// <summary>One past the GSN of the last record applied: the next record must have a GSN at least this.</summary>
    public long NextGsn { get; private set; }

    /// <summary>Every position below this is confirmed.</summary>
    public long ConfirmedThrough { get; private set; }

    /// <summary>The outputs of every record below this have been released (or were before a restart); none at or above it has.</summary>
    public long ReleasedThrough { get; private set; }

    /// <summary>Records applied but not yet confirmed.</summary>
    public int Unconfirmed => _kept.Count - _kept.FirstWhere(r => r.Gsn >= ConfirmedThrough);

    /// <summary>Records kept for a possible rollback (the unconfirmed ones and those since the base snapshot).</summary>
    public int Kept => _kept.Count;

    /// <summary>Outputs held until their records are confirmed.</summary>
    public int Held => _pending.Count;

    /// <summary>Records applied, re-applications by a rollback included.</summary>
    public long Applied { get; private set; }

    /// <summary>Rollbacks done (mis-speculations that reached applied records).</summary>
    public long Rollbacks { get; private set; }

    /// <summary>Applied records undone by rollbacks.</summary>
    public long RolledBackRecords { get; private set; }

    /// <summary>Held outputs dropped by rollbacks (they were never released).</summary>
    public long DiscardedOutputs { get; private set; }

    /// <summary>
    /// The newest confirmed snapshot: a copy of the state holding exactly the records below its position, at or below
    /// <see cref="ConfirmedThrough"/>. What a checkpoint saves: a restart resumes the log from its position.
    /// </summary>
    public (long Position, TState State) BaseSnapshot => (_snapshots[0].Position, _snapshots[0].State);

    /// <summary>Applies <paramref name="record"/>; outputs of a record that is already confirmed are added to <paramref name="released"/> at once.</summary>
    /// <exception cref="InvalidOperationException">The record's GSN is below <see cref="NextGsn"/> (records must come in GSN order).</exception>
    public void Apply(ConsumedRecord record, List<ReleasedOutput<TOutput>> released)
    {
        if (record.Gsn < NextGsn)
        {
            throw new InvalidOperationException($"Record at GSN {record.Gsn} arrived after GSN {NextGsn - 1}: a speculative consumer takes records in GSN order.");
        }

        Run(record, keepOutputs: true);
        _kept.Add(record);
        NextGsn = record.Gsn + 1;
        if (++_sinceSnapshot >= _snapshotEvery)
        {
            _snapshots.Add(new Snapshot(NextGsn, _copy(State)));
            _sinceSnapshot = 0;
            Compact(); // the record may be confirmed already (a restart re-applying, or a shard's late record)
        }

        Release(released);
    }

    /// <summary>Positions below <paramref name="toGsn"/> are confirmed: releases the outputs they hold into <paramref name="released"/>, in order.</summary>
    public void Confirm(long toGsn, List<ReleasedOutput<TOutput>> released)
    {
        var moved = false;
        if (_gsnOrdered && toGsn > NextGsn)
        {
            NextGsn = toGsn; // every record below a confirmation came before it (also when a restart re-reads the confirmed log)
            moved = true;
        }

        if (toGsn > ConfirmedThrough)
        {
            ConfirmedThrough = toGsn;
            moved = true;
        }

        if (moved)
        {
            Release(released);
            Compact();
        }
    }

    /// <summary>Keeps the newest snapshot at or below the confirmed (and applied) prefix, and the records after it.</summary>
    private void Compact()
    {
        var floor = Math.Min(ConfirmedThrough, NextGsn);
        var last = _snapshots[_snapshots.Count - 1];
        if (last.Position < floor && (_kept.Count == 0 || _kept[_kept.Count - 1].Gsn < last.Position))
        {
            // Nothing was applied since the newest snapshot (no-ops, other shards' positions): it is also the state at
            // the floor, so move it there and let the base, and with it a checkpoint's position, follow the log.
            _snapshots.ReplaceLast(last with { Position = floor });
        }

        var newer = _snapshots.FirstWhere(s => s.Position > floor);
        if (newer > 1)
        {
            _snapshots.RemoveFront(newer - 1);
            _kept.RemoveFront(_kept.FirstWhere(r => r.Gsn >= _snapshots[0].Position));
        }
    }

    /// <summary>
    /// Every position from <paramref name="fromGsn"/> on is void: undoes the records applied there (the state returns
    /// to what the records below it made) and drops their held outputs. Returns how many records were undone.
    /// </summary>
    /// <exception cref="InvalidOperationException"><paramref name="fromGsn"/> is below the confirmed prefix (confirmed positions never move).</exception>
    public int RollBack(long fromGsn)
    {
        if (fromGsn < ConfirmedThrough)
        {
            throw new InvalidOperationException($"A mis-speculation from GSN {fromGsn} reaches below the confirmed prefix ({ConfirmedThrough}): confirmed positions never move.");
        }

        var firstUndone = _kept.FirstWhere(r => r.Gsn >= fromGsn);
        var undone = _kept.Count - firstUndone;
        if (undone == 0)
        {
            NextGsn = Math.Min(NextGsn, fromGsn);
            return 0;
        }

        // The newest snapshot taken before any undone record was applied.
        var s = _snapshots.FirstWhere(x => x.Position > fromGsn) - 1;
        var snapshot = _snapshots[s];
        _snapshots.TruncateFrom(s + 1);
        State = _copy(snapshot.State);
        var from = _kept.FirstWhere(r => r.Gsn >= snapshot.Position);
        for (var i = from; i < firstUndone; i++)
        {
            Run(_kept[i], keepOutputs: false);
        }

        _sinceSnapshot = firstUndone - from;
        _kept.TruncateFrom(firstUndone);
        var firstDropped = _pending.FirstWhere(o => o.Gsn >= fromGsn);
        DiscardedOutputs += _pending.Count - firstDropped;
        _pending.TruncateFrom(firstDropped);
        NextGsn = fromGsn;
        Rollbacks++;
        RolledBackRecords += undone;
        return undone;
    }

    private void Run(ConsumedRecord record, bool keepOutputs)
    {
        _buffer.Clear();
        State = _apply(State, record, _buffer);
        Applied++;
        if (!keepOutputs || record.Gsn < ReleasedThrough)
        {
            return; // produced before (by the first run, or before a restart) and held or released then
        }

        for (var i = 0; i < _buffer.Count; i++)
        {
            _pending.Add(new ReleasedOutput<TOutput>(record.Gsn, i, record.Shard, _buffer[i]));
        }
    }

    private void Release(List<ReleasedOutput<TOutput>> released)
    {
        var n = 0;
        while (n < _pending.Count && _pending[n].Gsn < ConfirmedThrough)
        {
            released.Add(_pending[n]);
            n++;
        }

        _pending.RemoveFront(n);
        // Everything below this is released: applied records below the confirmed prefix gave their outputs above, and
        // records not yet applied are at or above NextGsn.
        ReleasedThrough = Math.Max(ReleasedThrough, Math.Min(ConfirmedThrough, NextGsn));
    }
}
