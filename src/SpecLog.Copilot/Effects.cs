namespace SpecLog.Copilot;

/// <summary>
/// Something the host must do after a replica call. Contract: the host makes every <see cref="PersistEffect{T}"/> of
/// one call durable, in order, before it performs any send of that same call; the other effects follow in list order.
/// </summary>
/// <typeparam name="T">The command payload type.</typeparam>
public abstract record Effect<T>;

/// <summary>Send <paramref name="Message"/> to replica <paramref name="To"/>.</summary>
/// <param name="To">The destination replica.</param>
/// <param name="Message">The message.</param>
public sealed record SendEffect<T>(int To, Message<T> Message) : Effect<T>;

/// <summary>Send <paramref name="Message"/> to every other replica.</summary>
/// <param name="Message">The message.</param>
public sealed record BroadcastEffect<T>(Message<T> Message) : Effect<T>;

/// <summary>Append <paramref name="Record"/> to the replica's durable state before sending anything from the same call.</summary>
/// <param name="Record">The record; replaying all records in order rebuilds the replica.</param>
public sealed record PersistEffect<T>(PersistRecord<T> Record) : Effect<T>;

/// <summary>This replica learnt that an entry is committed (informational: tests check agreement with it).</summary>
/// <param name="Log">The log.</param>
/// <param name="Slot">The entry index.</param>
/// <param name="Value">The committed value.</param>
public sealed record CommittedEffect<T>(int Log, long Slot, EntryValue<T> Value) : Effect<T>;

/// <summary>Apply <paramref name="Command"/> to the state machine: it is the next command of the merged, deduplicated order.</summary>
/// <param name="Command">The command.</param>
/// <param name="Log">The log of the entry it executed from.</param>
/// <param name="Slot">The entry index.</param>
public sealed record ExecuteEffect<T>(Command<T> Command, int Log, long Slot) : Effect<T>;

/// <summary>An entry finished executing (its new commands, if any, were emitted just before).</summary>
/// <param name="Log">The log.</param>
/// <param name="Slot">The entry index.</param>
public sealed record EntryExecutedEffect<T>(int Log, long Slot) : Effect<T>;

/// <summary>This replica is an active pilot and <paramref name="Command"/> has executed: answer the client.</summary>
/// <param name="Command">The executed command.</param>
public sealed record ReplyEffect<T>(CommandId Command) : Effect<T>;

/// <summary>This replica became or stopped being the active pilot of <paramref name="Log"/>.</summary>
/// <param name="Log">The log.</param>
/// <param name="Active">True when it became pilot.</param>
/// <param name="Ballot">The view ballot concerned.</param>
public sealed record PilotChangedEffect<T>(int Log, bool Active, Ballot Ballot) : Effect<T>;
