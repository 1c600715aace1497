using System.Collections.Immutable;

namespace SpecLog.Copilot;

/// <summary>Base of every replica-to-replica message. Handlers are idempotent and order-insensitive; any may be lost, duplicated or delayed.</summary>
/// <typeparam name="T">The command payload type.</typeparam>
public abstract record Message<T>;

/// <summary>A pilot proposes <paramref name="Value"/> (commands and initial dependency) for its log's entry.</summary>
/// <param name="Log">The log (0 = pilot, 1 = copilot).</param>
/// <param name="Slot">The entry index in that log.</param>
/// <param name="Ballot">The pilot's view ballot.</param>
/// <param name="Value">The batch and its initial dependency: the latest entry of the other log the pilot has seen.</param>
public sealed record FastAccept<T>(int Log, long Slot, Ballot Ballot, EntryValue<T> Value) : Message<T>;

/// <summary>Answer to <see cref="FastAccept{T}"/>: OK with the proposed dependency, or the dependency this replica believes correct.</summary>
/// <param name="Log">The log.</param>
/// <param name="Slot">The entry index.</param>
/// <param name="Ballot">The ballot answered.</param>
/// <param name="Ok">True when the proposed dependency passed the compatibility check.</param>
/// <param name="Dep">The proposed dependency when OK, otherwise the suggested one (latest entry of the other log seen).</param>
public sealed record FastAcceptReply<T>(int Log, long Slot, Ballot Ballot, bool Ok, long Dep) : Message<T>;

/// <summary>Accept phase: the proposer asks replicas to accept <paramref name="Value"/> at <paramref name="Ballot"/>.</summary>
/// <param name="Log">The log.</param>
/// <param name="Slot">The entry index.</param>
/// <param name="Ballot">The proposer's ballot (view ballot, or a recovery ballot).</param>
/// <param name="Value">The value with its final dependency.</param>
public sealed record Accept<T>(int Log, long Slot, Ballot Ballot, EntryValue<T> Value) : Message<T>;

/// <summary>A replica accepted an <see cref="Accept{T}"/>.</summary>
/// <param name="Log">The log.</param>
/// <param name="Slot">The entry index.</param>
/// <param name="Ballot">The ballot accepted.</param>
public sealed record AcceptReply<T>(int Log, long Slot, Ballot Ballot) : Message<T>;

/// <summary>A replica refused a FastAccept, Accept or Prepare because it promised a higher ballot.</summary>
/// <param name="Log">The log.</param>
/// <param name="Slot">The entry index.</param>
/// <param name="Ballot">The refused ballot.</param>
/// <param name="SlotPromise">The ballot promised for this entry alone (takeover or recovery).</param>
/// <param name="ViewPromise">The ballot promised for the whole log (the view).</param>
public sealed record Reject<T>(int Log, long Slot, Ballot Ballot, Ballot SlotPromise, Ballot ViewPromise) : Message<T>;

/// <summary>The entry is committed with <paramref name="Value"/>; sent by the proposer (until acknowledged) and in answer to catch-up.</summary>
/// <param name="Log">The log.</param>
/// <param name="Slot">The entry index.</param>
/// <param name="Value">The committed value.</param>
public sealed record Commit<T>(int Log, long Slot, EntryValue<T> Value) : Message<T>;

/// <summary>Acknowledges a <see cref="Commit{T}"/>, so the proposer stops resending it.</summary>
/// <param name="Log">The log.</param>
/// <param name="Slot">The entry index.</param>
public sealed record CommitAck<T>(int Log, long Slot) : Message<T>;

/// <summary>Recovery (fast takeover or view change) of one entry: promise <paramref name="Ballot"/> and report the entry's state.</summary>
/// <param name="Log">The log.</param>
/// <param name="Slot">The entry index.</param>
/// <param name="Ballot">The recovery ballot.</param>
/// <param name="HintDep">The entry's original dependency if the recoverer knows it (null if not): conflicts are reported above it.</param>
public sealed record Prepare<T>(int Log, long Slot, Ballot Ballot, long? HintDep) : Message<T>;

/// <summary>What a replica knows of an entry, reported to a recoverer.</summary>
/// <param name="Status">Empty, fast-accepted, accepted or committed.</param>
/// <param name="AcceptedBallot">The ballot at which <paramref name="Value"/> was (fast-)accepted.</param>
/// <param name="Value">The (fast-)accepted or committed value, if any.</param>
/// <param name="FastOk">For a fast-accepted entry: whether this replica agreed with the proposed dependency.</param>
public sealed record SlotReport<T>(SlotStatus Status, Ballot AcceptedBallot, EntryValue<T>? Value, bool FastOk);

/// <summary>An entry of the other log that may conflict with the entry being recovered (its dependency may lie before it).</summary>
/// <param name="Slot">The other log's entry index.</param>
/// <param name="Committed">True if the reporter knows it committed (then <paramref name="Dep"/> is final).</param>
/// <param name="Dep">Its committed dependency, or the lowest dependency the reporter has seen for it (-1 while under recovery).</param>
public readonly record struct ConflictReport(long Slot, bool Committed, long Dep);

/// <summary>Answer to <see cref="Prepare{T}"/>: the promise, the entry's state and the possibly conflicting entries of the other log.</summary>
/// <param name="Log">The log.</param>
/// <param name="Slot">The entry index.</param>
/// <param name="Ballot">The promised ballot.</param>
/// <param name="State">The entry's state at this replica.</param>
/// <param name="ConflictsAbove">Conflicts are listed for other-log entries above this index.</param>
/// <param name="ConflictsComplete">False when the replica knew no dependency to search above, and listed nothing.</param>
/// <param name="Conflicts">Other-log entries above <paramref name="ConflictsAbove"/> whose dependency may lie before this entry.</param>
public sealed record PrepareReply<T>(
    int Log,
    long Slot,
    Ballot Ballot,
    SlotReport<T> State,
    long ConflictsAbove,
    bool ConflictsComplete,
    ImmutableArray<ConflictReport> Conflicts) : Message<T>;

/// <summary>View change: a candidate asks to become pilot of <paramref name="Log"/> with <paramref name="Ballot"/>.</summary>
/// <param name="Log">The log whose pilot is replaced (the other log's pilot keeps going).</param>
/// <param name="Ballot">The candidate's view ballot.</param>
public sealed record ViewPrepare<T>(int Log, Ballot Ballot) : Message<T>;

/// <summary>Answer to <see cref="ViewPrepare{T}"/>.</summary>
/// <param name="Log">The log.</param>
/// <param name="Ballot">The ballot answered.</param>
/// <param name="Ok">True when the view is promised.</param>
/// <param name="Promised">The replica's view promise for the log after handling the request.</param>
/// <param name="MaxSlot">Highest entry index of the log this replica has seen (-1 for none).</param>
public sealed record ViewPrepareReply<T>(int Log, Ballot Ballot, bool Ok, Ballot Promised, long MaxSlot) : Message<T>;

/// <summary>Periodic liveness and progress beacon every replica broadcasts.</summary>
/// <param name="View0">The sender's view ballot for log 0.</param>
/// <param name="View1">The sender's view ballot for log 1.</param>
/// <param name="Active0">True when the sender is the active pilot of log 0.</param>
/// <param name="Active1">True when the sender is the active pilot of log 1.</param>
/// <param name="Committed0">Length of the sender's contiguous committed prefix of log 0.</param>
/// <param name="Committed1">Length of the sender's contiguous committed prefix of log 1.</param>
/// <param name="Known0">Highest entry of log 0 the sender has seen (a pilot's anchor announcement).</param>
/// <param name="Known1">Highest entry of log 1 the sender has seen (a pilot's anchor announcement).</param>
public sealed record Heartbeat<T>(
    Ballot View0,
    Ballot View1,
    bool Active0,
    bool Active1,
    long Committed0,
    long Committed1,
    long Known0,
    long Known1) : Message<T>;

/// <summary>
/// A replica still promising the pilot's view acknowledges (durably) that entries up to <paramref name="Slot"/> of the
/// log exist. Once f+1 replicas have, any later view change hears of them, which bounds how far the pilot may propose.
/// </summary>
/// <param name="Log">The log.</param>
/// <param name="Ballot">The pilot's view ballot, still promised by the sender.</param>
/// <param name="Slot">The acknowledged entry index.</param>
public sealed record AnchorAck<T>(int Log, Ballot Ballot, long Slot) : Message<T>;

/// <summary>A replica that fell behind asks for committed entries of <paramref name="Log"/> from <paramref name="FromSlot"/> on.</summary>
/// <param name="Log">The log.</param>
/// <param name="FromSlot">The first entry index wanted.</param>
public sealed record CatchUpRequest<T>(int Log, long FromSlot) : Message<T>;
