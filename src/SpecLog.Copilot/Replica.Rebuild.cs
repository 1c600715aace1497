namespace SpecLog.Copilot;

/// <remarks>
/// <para><b>Rebuild after a disk loss.</b> A replica R that lost its records forgot its promises and its votes, and
/// the others may have compacted entries it never learnt. Its host rebuilds it from facts only:</para>
/// <list type="number">
/// <item>Every other replica (all n - 1) contributes to the floor (<see cref="FloorContribution"/>), after its host has
/// fenced R's lost incarnation (no message from it is ever handled again). From then on every effect the lost R had on
/// the group is in the state of the others: each vote it cast answered some proposer, whose own acceptor registered the
/// entry first (so the proposer's highest known entry covers it), and each view promise it made was for a candidacy
/// that has either ended (its replies are ignored for ever), taken its own promise, or is still running (its ballot is
/// contributed).</item>
/// <item>One live donor gives a transfer checkpoint (<see cref="TakeTransferCheckpoint"/>): heads, bases, high-water
/// marks and its committed entries. Facts, never votes: the donor's promises and accepted values are its own, and a
/// copy would let one acceptor's votes count twice.</item>
/// <item>R starts from <see cref="RebuildRecords"/>: the transfer checkpoint and a <see cref="RebuildRecord{T}"/> with
/// the floor. Its view promises start at the floor's (a view its lost self promised was promised, or is being
/// campaigned for, by its candidate, one of the others); its ballot rounds above the floor's; it is no pilot (it may
/// become one through a view change at a fresh ballot); and it <i>abstains</i> at every entry at or below the floor's
/// known entry: it never answers a FastAccept, Accept or Prepare of such an entry that it has not seen committed, so it
/// never counts in a quorum there (its lost self may have voted; any value a quorum with the lost self chose was also
/// accepted by another member, so the others alone recover it). It still learns and executes commits there.</item>
/// <item>Its compatibility check (and a recovery's conflict list) must also treat every such entry of the other log,
/// not committed here, as present with an unknown dependency (like a recovery guard): its lost self may have seen one
/// that conflicts, and was then counted in a fast quorum of the other log's entry that it would now contradict.</item>
/// </list>
/// <para>The contribution also makes the contributing replica forget R's compaction watermarks (R's lost self reported
/// a committed prefix R no longer has): compaction then waits for R's new reports, so R can always catch up from the
/// donor's committed prefix, which lies at or above every other replica's base (the probe precedes the transfer).</para>
/// <para>The floor is kept for good (checkpoints carry it forward): once R's committed prefix of a log passes the
/// floor's known entry, abstention no longer changes anything there (committed entries are answered with their
/// commit), but the round floor must survive restarts, which rebuild the highest round from the records.</para>
/// </remarks>
public sealed partial class Replica<T>
{
    private RebuildFloor? _floor;

    /// <summary>
    /// Test hook (the simulator's demonstration that the rule matters): when false, a rebuilt replica's compatibility
    /// check and conflict lists ignore the other log's abstained entries, as if it had never seen them.
    /// </summary>
    internal bool GuardAbstainedEntries { get; set; } = true;

    /// <summary>The floor this replica was rebuilt with after losing its records (null for one that never was).</summary>
    public RebuildFloor? Floor => _floor;

    /// <summary>
    /// True while this rebuilt replica still abstains at some entry of <paramref name="log"/>: its committed prefix has
    /// not passed the floor's known entry.
    /// </summary>
    public bool IsRebuilding(int log) => _floor is { } f && _logs[log].CommittedPrefix <= f.Known(log);

    /// <summary>
    /// This replica's answer to the host rebuilding replica <paramref name="rebuilding"/> after a disk loss: per log its
    /// view promise (or the ballot of its candidacy, if higher: replies the lost replica sent it may still be counted)
    /// and its highest known entry, and the highest round it has seen. It also forgets the compaction watermarks
    /// <paramref name="rebuilding"/>'s lost self reported, so nothing it no longer holds is compacted before it reports
    /// again. The host must first fence <paramref name="rebuilding"/>'s lost incarnation: from this call on, no message
    /// it sent may be handled. Call it between other calls.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="rebuilding"/> is not another replica of the group.</exception>
    public RebuildFloor FloorContribution(int rebuilding)
    {
        if (rebuilding < 0 || rebuilding >= _n || rebuilding == Id)
        {
            throw new ArgumentOutOfRangeException(nameof(rebuilding), rebuilding, "Another replica of the group.");
        }

        for (var log = 0; log < 2; log++)
        {
            _watermarks[log][rebuilding] = new Watermark();
        }

        return new RebuildFloor(
            ContributedView(0),
            ContributedView(1),
            _logs[0].MaxKnown,
            _logs[1].MaxKnown,
            _maxRound);
    }

    /// <summary>
    /// The transfer checkpoint a donor gives a replica being rebuilt: the <see cref="CheckpointRecord{T}"/> (heads,
    /// bases, high-water marks) and one record per committed entry held at or above the base, with no ballot, promise
    /// or vote. Never the donor's view promises, pilot record, known-entry marks or uncommitted entries: those are the
    /// donor's votes. The host takes its state-machine snapshot at the same moment (it reflects the entries before the
    /// heads) and gives both to the rebuilt replica's host.
    /// </summary>
    public ReplicaCheckpoint<T> TakeTransferCheckpoint()
    {
        var header = new CheckpointRecord<T>(_heads[0], _heads[1], _logs[0].Base, _logs[1].Base, new Dictionary<int, long>(_highWater));
        var records = new List<PersistRecord<T>> { header };
        for (var log = 0; log < 2; log++)
        {
            var state = _logs[log];
            for (var slot = state.Base; slot < state.End; slot++)
            {
                if (state.Get(slot) is { IsCommitted: true } s)
                {
                    records.Add(new SlotRecord<T>(log, slot, Ballot.None, SlotStatus.Committed, Ballot.None, s.Value, false, -1, long.MaxValue, false));
                }
            }
        }

        return new ReplicaCheckpoint<T>(header, records);
    }

    /// <summary>
    /// The records a rebuilt replica starts from (pass them to the constructor, and persist them in place of whatever
    /// is left of its records before sending anything): <paramref name="transfer"/>'s records, then a
    /// <see cref="RebuildRecord{T}"/> with <paramref name="floor"/>.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="transfer"/> holds anything but its header and committed entries.</exception>
    public static IReadOnlyList<PersistRecord<T>> RebuildRecords(ReplicaCheckpoint<T> transfer, RebuildFloor floor)
    {
        ArgumentNullException.ThrowIfNull(transfer);
        ArgumentNullException.ThrowIfNull(floor);
        if (transfer.Records.Count == 0 || !ReferenceEquals(transfer.Records[0], transfer.Header)
            || transfer.Records.Skip(1).Any(r => r is not SlotRecord<T> { Status: SlotStatus.Committed }))
        {
            throw new ArgumentException("A transfer checkpoint holds its header and committed entries only.", nameof(transfer));
        }

        return [.. transfer.Records, new RebuildRecord<T>(floor)];
    }

    private Ballot ContributedView(int log) =>
        _candidacies[log] is { } c ? Ballot.Max(_logs[log].ViewPromise, c.Ballot) : _logs[log].ViewPromise;

    /// <summary>Replays a rebuild record (constructor only): promises, known entries and rounds start at the floor; no pilot role is resumed.</summary>
    private void RestoreFloor(RebuildFloor floor)
    {
        _floor = _floor is null ? floor : RebuildFloor.Max([_floor, floor]);
        for (var log = 0; log < 2; log++)
        {
            _logs[log].ViewPromise = Ballot.Max(_logs[log].ViewPromise, floor.View(log));
            _logs[log].MaxKnown = Math.Max(_logs[log].MaxKnown, floor.Known(log));
            _activated[log] = Ballot.None; // a later PilotRecord (a view won after the rebuild) sets it again
        }

        _maxRound = Math.Max(_maxRound, floor.MaxRound);
    }

    /// <summary>True when this rebuilt replica abstains at the entry: at or below the floor, where its lost self may have voted.</summary>
    private bool Abstains(int log, long slot) => _floor is { } f && slot <= f.Known(log);

    /// <summary>
    /// Handles a FastAccept, Accept or Prepare of an entry this replica abstains at: a committed entry is answered with
    /// its commit (a fact); anything else goes unanswered, changes nothing and never counts this replica in a quorum.
    /// </summary>
    private void Abstain(int from, int log, long slot)
    {
        Counters.Abstentions++;
        if (from != Id && _logs[log].Get(slot) is { IsCommitted: true } s)
        {
            Send(from, new Commit<T>(log, slot, s.Value!));
        }
    }

    /// <summary>
    /// For the compatibility check and conflict lists: an entry of <paramref name="log"/> this replica abstains at and
    /// has not seen committed may exist with any dependency (its lost self may have seen it).
    /// </summary>
    private bool UnknownAbstained(int log, long slot) =>
        GuardAbstainedEntries && Abstains(log, slot) && slot >= _logs[log].Base && _logs[log].Get(slot) is not { IsCommitted: true };
}
