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
