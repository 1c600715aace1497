namespace SpecLog.Copilot;

/// <summary>State of a log entry at one replica.</summary>
public enum SlotStatus
{
    /// <summary>Nothing accepted (possibly a promise or a recovery guard).</summary>
    Empty,

    /// <summary>Accepted through FastAccept (with or without agreeing to the proposed dependency).</summary>
    FastAccepted,

    /// <summary>Accepted through the Accept phase.</summary>
    Accepted,

    /// <summary>Known to be committed; the value is final.</summary>
    Committed,
}

/// <summary>A durable record of acceptor state. Replaying a replica's records in order rebuilds everything it must not forget.</summary>
/// <typeparam name="T">The command payload type.</typeparam>
public abstract record PersistRecord<T>;

/// <summary>The replica promised view ballot <paramref name="Promised"/> for <paramref name="Log"/>.</summary>
/// <param name="Log">The log.</param>
/// <param name="Promised">The view ballot.</param>
public sealed record ViewPromiseRecord<T>(int Log, Ballot Promised) : PersistRecord<T>;

/// <summary>The replica finished recovering the log after winning view <paramref name="Ballot"/> and may propose in it.</summary>
/// <param name="Log">The log.</param>
/// <param name="Ballot">The view ballot.</param>
public sealed record PilotRecord<T>(int Log, Ballot Ballot) : PersistRecord<T>;

/// <summary>The replica acknowledged to the pilot of the log's view that entries up to <paramref name="Slot"/> exist.</summary>
/// <param name="Log">The log.</param>
/// <param name="Slot">The highest entry index acknowledged.</param>
public sealed record KnownSlotRecord<T>(int Log, long Slot) : PersistRecord<T>;

/// <summary>The full state of one entry at this replica after a change (the latest record of an entry wins).</summary>
/// <param name="Log">The log.</param>
/// <param name="Slot">The entry index.</param>
/// <param name="Promised">The ballot promised for this entry alone.</param>
/// <param name="Status">Empty, fast-accepted, accepted or committed.</param>
/// <param name="AcceptedBallot">The ballot of the (fast-)accepted value.</param>
/// <param name="Value">The (fast-)accepted or committed value.</param>
/// <param name="FastOk">Whether the FastAccept was answered OK.</param>
/// <param name="ReplyDep">The dependency answered to the FastAccept.</param>
/// <param name="CompatDep">The lowest non-no-op dependency ever accepted for the entry (-1 under recovery guard; long.MaxValue for none).</param>
/// <param name="Guarded">True once a recovery Prepare reached this replica for the entry.</param>
public sealed record SlotRecord<T>(
    int Log,
    long Slot,
    Ballot Promised,
    SlotStatus Status,
    Ballot AcceptedBallot,
    EntryValue<T>? Value,
    bool FastOk,
    long ReplyDep,
    long CompatDep,
    bool Guarded) : PersistRecord<T>;

/// <summary>
/// The first record of a checkpoint (<see cref="Replica{T}.TakeCheckpoint"/>): where execution stood, what was compacted
/// and the executor's per-client high-water marks. The host persists it with the checkpoint's other records in place of
/// everything persisted before, together with its state-machine snapshot taken at exactly these heads.
/// </summary>
/// <param name="Head0">Entries of log 0 executed (the next to execute), reflected in the host's snapshot.</param>
/// <param name="Head1">Entries of log 1 executed (the next to execute), reflected in the host's snapshot.</param>
/// <param name="Base0">Entries of log 0 below this index were compacted (committed at every replica); at most <paramref name="Head0"/>.</param>
/// <param name="Base1">Entries of log 1 below this index were compacted (committed at every replica); at most <paramref name="Head1"/>.</param>
/// <param name="HighWater">The highest executed command sequence of each client (the executor's deduplication).</param>
public sealed record CheckpointRecord<T>(long Head0, long Head1, long Base0, long Base1, IReadOnlyDictionary<int, long> HighWater)
    : PersistRecord<T>;

/// <summary>A checkpoint of one replica: the records that rebuild it (see <see cref="Replica{T}.TakeCheckpoint"/>).</summary>
/// <typeparam name="T">The command payload type.</typeparam>
/// <param name="Header">The checkpoint record: heads, bases and high-water marks (also the first of <paramref name="Records"/>).</param>
/// <param name="Records">
/// Everything to persist in place of the replica's records so far, in order: <paramref name="Header"/>, then view
/// promises, the pilot record that resumes a pilot, the known-entry marks, and the state of every entry still held.
/// </param>
public sealed record ReplicaCheckpoint<T>(CheckpointRecord<T> Header, IReadOnlyList<PersistRecord<T>> Records);

/// <summary>
/// What a replica rebuilt after losing its records must respect (see <see cref="Replica{T}.FloorContribution"/>):
/// per log, the highest view ballot any other replica promised or is campaigning for and the highest entry any other
/// replica knows, and the highest ballot round any other replica has seen. The floor of a rebuild is the
/// <see cref="Max"/> of every other replica's contribution.
/// </summary>
/// <param name="View0">View ballot floor of log 0.</param>
/// <param name="View1">View ballot floor of log 1.</param>
/// <param name="Known0">Highest known entry of log 0 (-1 for none): the rebuilt replica abstains at and below it.</param>
/// <param name="Known1">Highest known entry of log 1 (-1 for none): the rebuilt replica abstains at and below it.</param>
/// <param name="MaxRound">Highest ballot round seen: the rebuilt replica's own ballots start above it.</param>
public sealed record RebuildFloor(Ballot View0, Ballot View1, long Known0, long Known1, int MaxRound)
{
    /// <summary>The view ballot floor of <paramref name="log"/>.</summary>
    public Ballot View(int log) => log == 0 ? View0 : View1;

    /// <summary>The highest known entry of <paramref name="log"/>.</summary>
    public long Known(int log) => log == 0 ? Known0 : Known1;

    /// <summary>The component-wise maximum of <paramref name="contributions"/>.</summary>
    /// <exception cref="ArgumentException">No contribution.</exception>
    public static RebuildFloor Max(IEnumerable<RebuildFloor> contributions)
    {
        ArgumentNullException.ThrowIfNull(contributions);
        RebuildFloor? max = null;
        foreach (var c in contributions)
        {
            ArgumentNullException.ThrowIfNull(c, nameof(contributions));
            max = max is null
                ? c
                : new RebuildFloor(
                    Ballot.Max(max.View0, c.View0),
                    Ballot.Max(max.View1, c.View1),
                    Math.Max(max.Known0, c.Known0),
                    Math.Max(max.Known1, c.Known1),
                    Math.Max(max.MaxRound, c.MaxRound));
        }

        return max ?? throw new ArgumentException("A rebuild floor needs at least one contribution.", nameof(contributions));
    }

    /// <summary>Short form for diagnostics.</summary>
    public override string ToString() => $"views {View0}/{View1} known {Known0}/{Known1} round {MaxRound}";
}

/// <summary>
/// The replica was rebuilt after losing its records (<see cref="Replica{T}.RebuildRecords"/>): it starts from a
/// transfer checkpoint and this floor. Persisted right after the transfer checkpoint's records, replayed on every
/// restart and carried forward by <see cref="Replica{T}.TakeCheckpoint"/>.
/// </summary>
/// <param name="Floor">The maximum of every other replica's <see cref="Replica{T}.FloorContribution"/>.</param>
public sealed record RebuildRecord<T>(RebuildFloor Floor) : PersistRecord<T>;
