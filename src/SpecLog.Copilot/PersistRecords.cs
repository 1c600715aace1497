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
