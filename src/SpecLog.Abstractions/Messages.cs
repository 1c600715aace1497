using SpecLog.FixAnte;

namespace SpecLog;

/// <summary>What the ordering layer tells a shard: the committed cut and the windows the shard did not know yet.</summary>
/// <param name="CommittedCut">Cuts below this are committed.</param>
/// <param name="Windows">Windows with numbers at or above the shard's <see cref="ShardReport.KnownWindows"/>, oldest first.</param>
/// <param name="LagFixTargetCut">If positive, the shard must fill its missing cuts below this with no-ops at once.</param>
/// <param name="Waiting">Whether some shard holds uncommitted records; when false, idle shards stop filling and reporting.</param>
/// <param name="CommittedAtMicros">When the ordering layer committed <paramref name="CommittedCut"/> (UTC µs; 0 if unknown), for stage latencies.</param>
/// <param name="StateVersion">Reports the sequencer state had applied when the notice was made (the same on every replica at the same state), so a shard can tell a stale notice from a newer one; 0 if unknown.</param>
/// <param name="Base">Where <paramref name="Windows"/> start when the shard knew fewer windows than the ordering layer still holds (the log was trimmed past them); null otherwise.</param>
[GenerateSerializer, Immutable, Alias("speclog.CommitNotice")]
public sealed record CommitNotice(
    [property: Id(0)] long CommittedCut,
    [property: Id(1)] WindowConfig[] Windows,
    [property: Id(2)] long LagFixTargetCut,
    [property: Id(3)] bool Waiting,
    [property: Id(4)] long CommittedAtMicros = 0,
    [property: Id(5)] long StateVersion = 0,
    [property: Id(6)] WindowBase? Base = null);

/// <summary>
/// Decided windows as a holder of the history answers for them: <see cref="Windows"/> from the window asked for, or
/// from <see cref="Base"/> when the history was truncated above it (the log was trimmed).
/// </summary>
/// <param name="Base">Where the windows start when the asker wanted older ones the history no longer holds; null otherwise.</param>
/// <param name="Windows">The windows, oldest first.</param>
[GenerateSerializer, Immutable, Alias("speclog.WindowSlice")]
public sealed record WindowSlice([property: Id(0)] WindowBase? Base, [property: Id(1)] WindowConfig[] Windows)
{
    /// <summary>No windows.</summary>
    public static WindowSlice Empty { get; } = new(null, []);

    /// <summary>The windows of <paramref name="history"/> numbered <paramref name="fromWindow"/> and up, with its base if it starts above that.</summary>
    public static WindowSlice From(WindowHistory history, long fromWindow)
    {
        ArgumentNullException.ThrowIfNull(history);
        return new(fromWindow < history.First ? history.Base() : null, history.WindowsFrom(fromWindow));
    }

    /// <summary>Adds the slice to <paramref name="history"/> (starting it at the base first if it lacks what lies below); returns the windows added.</summary>
    public int AddTo(WindowHistory history)
    {
        ArgumentNullException.ThrowIfNull(history);
        if (Base is not null)
        {
            history.StartAt(Base);
        }

        return history.AddRange(Windows);
    }
}

/// <summary>One entry of a shard as delivered to subscribers: a record with its GSN, or a run of no-op slots.</summary>
/// <param name="Slot">The shard-local slot of the entry (the first slot, for a no-op run).</param>
/// <param name="Gsn">The record's global sequence number; -1 for a no-op run.</param>
/// <param name="NoOpSlots">0 for a record; the number of consecutive no-op slots otherwise.</param>
/// <param name="Payload">The record's bytes; null for a no-op run.</param>
/// <param name="Tag">The record's tag (<see cref="RecordTags"/>), null when it was appended without one.</param>
/// <remarks>
/// For a filtered subscription, records that do not match are sent as no-op runs too: skipped positions, merged
/// with the fillers next to them.
/// </remarks>
[GenerateSerializer, Immutable, Alias("speclog.ShardEntry")]
public readonly record struct ShardEntry(
    [property: Id(0)] long Slot,
    [property: Id(1)] long Gsn,
    [property: Id(2)] long NoOpSlots,
    [property: Id(3)] byte[]? Payload,
    [property: Id(4)] string? Tag = null)
{
    /// <summary>True for a no-op run or skipped positions (never shown to applications).</summary>
    public bool IsNoOp => NoOpSlots > 0;

    /// <summary>How many slots the entry covers.</summary>
    public long SlotCount => IsNoOp ? NoOpSlots : 1;
}

/// <summary>
/// A push from a shard to one subscriber: consecutive entries from <see cref="FromSlot"/> to <see cref="ToSlot"/>, the
/// windows the subscriber lacks, and the confirmed GSN prefix.
/// </summary>
[GenerateSerializer, Immutable, Alias("speclog.ShardEventBatch")]
public sealed record ShardEventBatch(
    [property: Id(0)] int Shard,
    [property: Id(1)] long FromSlot,
    [property: Id(2)] long ToSlot,
    [property: Id(3)] ShardEntry[] Entries,
    [property: Id(4)] WindowConfig[] Windows,
    [property: Id(5)] long ConfirmedGsn,
    [property: Id(6)] long MisSpeculatedFromGsn,
    [property: Id(7)] long MisSpeculatedToGsn,
    [property: Id(8)] long SentAtMicros = 0,
    [property: Id(9)] WindowBase? Base = null);

/// <summary>The answer to a read of shard slots: consecutive entries starting at the requested slot.</summary>
[GenerateSerializer, Immutable, Alias("speclog.ShardReadResult")]
public sealed record ShardReadResult(
    [property: Id(0)] int Shard,
    [property: Id(1)] ShardEntry[] Entries,
    [property: Id(2)] long CommittedSlots,
    [property: Id(3)] long DurableSlots);

/// <summary>A shard's state, for the dashboard, tests and operators.</summary>
/// <remarks>
/// <c>Diagnostics</c> is for an operator chasing a stall: whether the shard keeps cuts moving, whether it holds
/// uncommitted records, how long since its last report and last commit notice, and (a leader) what each follower
/// acknowledged.
/// </remarks>
[GenerateSerializer, Immutable, Alias("speclog.ShardStatus")]
public sealed record ShardStatus(
    [property: Id(0)] int Shard,
    [property: Id(1)] long DurableSlots,
    [property: Id(2)] long DurableRecords,
    [property: Id(3)] long NoOpSlots,
    [property: Id(4)] long CommittedSlots,
    [property: Id(5)] long CommittedCut,
    [property: Id(6)] long KnownWindows,
    [property: Id(7)] int CurrentQuota,
    [property: Id(8)] long ReportsSent,
    [property: Id(9)] long LagFixes,
    [property: Id(10)] int Subscribers,
    [property: Id(11)] long PendingAppends,
    [property: Id(12)] string Mode,
    [property: Id(13)] DateTimeOffset ActivatedAt,
    [property: Id(14)] long WindowWaitMicros = 0,
    [property: Id(15)] long NoticesReceived = 0,
    [property: Id(16)] long PushesSent = 0,
    [property: Id(17)] long Wakeups = 0,
    [property: Id(18)] long CutIntervalMicros = 0,
    [property: Id(19)] int Replica = 0,
    [property: Id(20)] int Replicas = 1,
    [property: Id(21)] string Role = "Single",
    [property: Id(22)] long Epoch = 0,
    [property: Id(23)] long LogEntries = 0,
    [property: Id(24)] string Silo = "",
    [property: Id(25)] bool Departed = false,
    [property: Id(26)] long LogFirstEntry = 0,
    [property: Id(27)] int LogSegments = 0,
    [property: Id(28)] long TrimmedBelowGsn = 0,
    [property: Id(29)] string? Diagnostics = null,
    [property: Id(30)] long DeliverableSlots = 0,
    [property: Id(31)] SubscriberPosition[]? SubscriberPositions = null,
    [property: Id(32)] RecentLatency? AppendLatency = null,
    [property: Id(33)] RecentLatency? DeliveryLatency = null);

/// <summary>How far one subscriber of a shard has been sent (for the dashboard: how far behind it is).</summary>
/// <param name="Subscriber">The subscription's id.</param>
/// <param name="NextSlot">The first slot not yet pushed to it.</param>
/// <param name="Filtered">Whether it receives only records matching a filter.</param>
/// <param name="InFlight">Whether a push to it awaits its answer.</param>
[GenerateSerializer, Immutable, Alias("speclog.SubscriberPosition")]
public sealed record SubscriberPosition(
    [property: Id(0)] Guid Subscriber,
    [property: Id(1)] long NextSlot,
    [property: Id(2)] bool Filtered,
    [property: Id(3)] bool InFlight);

/// <summary>Percentiles of a shard's recent latencies (its last few hundred samples), in milliseconds.</summary>
/// <param name="Samples">Samples the percentiles are taken over.</param>
/// <param name="P50Ms">Median.</param>
/// <param name="P99Ms">99th percentile.</param>
[GenerateSerializer, Immutable, Alias("speclog.RecentLatency")]
public sealed record RecentLatency(
    [property: Id(0)] int Samples,
    [property: Id(1)] double P50Ms,
    [property: Id(2)] double P99Ms);

/// <summary>The sequencer's state, for the dashboard, tests and operators.</summary>
[GenerateSerializer, Immutable, Alias("speclog.SequencerStatus")]
public sealed record SequencerStatus(
    [property: Id(0)] int ShardCount,
    [property: Id(1)] long CommittedCut,
    [property: Id(2)] long CommittedGsn,
    [property: Id(3)] long Windows,
    [property: Id(4)] WindowConfig? CurrentWindow,
    [property: Id(5)] long ReportsApplied,
    [property: Id(6)] long LagFixesIssued,
    [property: Id(7)] long LagFixesAcknowledged,
    [property: Id(8)] long[] CompletedCuts,
    [property: Id(9)] string Mode,
    [property: Id(10)] int MaxRecordSize,
    [property: Id(11)] int MaxBatchRecords,
    [property: Id(12)] int ShardReplicas = 1,
    [property: Id(13)] long Groundings = 0,
    [property: Id(14)] int[]? GroundedShards = null,
    [property: Id(15)] int[]? DepartedShards = null,
    [property: Id(16)] int[]? JoiningShards = null,
    [property: Id(17)] int[]? LeavingShards = null,
    [property: Id(18)] int[]? FailedShards = null,
    [property: Id(19)] long TrimmedBelowGsn = 0,
    [property: Id(20)] string Replication = "Single",
    [property: Id(21)] int OrderingReplicas = 0)
{
    /// <summary>
    /// The shards that take appends: every id below <see cref="ShardCount"/> that has not departed and is not leaving
    /// (a joining shard takes appends at once; they are positioned from its first window on).
    /// </summary>
    public int[] ActiveShards => [.. Enumerable.Range(0, ShardCount).Where(s => !(DepartedShards ?? []).Contains(s) && !(LeavingShards ?? []).Contains(s))];
}

/// <summary>The protocol state of one ordering-layer replica, for tests, operators and the dashboard.</summary>
/// <param name="Replica">The replica id.</param>
/// <param name="Epoch">This activation's incarnation number (peers ignore older incarnations).</param>
/// <param name="Silo">The silo hosting the replica.</param>
/// <param name="Mode">Copilot or MultiPaxos.</param>
/// <param name="ReplicaCount">n.</param>
/// <param name="Pilot0">The replica this one believes pilots log 0.</param>
/// <param name="Pilot1">The replica this one believes pilots log 1 (unused in Multi-Paxos).</param>
/// <param name="ActivePilot0">Whether this replica is the active pilot of log 0.</param>
/// <param name="ActivePilot1">Whether this replica is the active pilot of log 1.</param>
/// <param name="Executed0">Entries of log 0 executed.</param>
/// <param name="Executed1">Entries of log 1 executed.</param>
/// <param name="CommandsExecuted">Shard reports applied to the sequencer state machine.</param>
/// <param name="FastCommits">Entries this replica committed on the fast path (as pilot).</param>
/// <param name="SlowPaths">Entries this replica committed through the Accept phase.</param>
/// <param name="Takeovers">Fast takeovers this replica started.</param>
/// <param name="ViewsWon">View changes this replica won.</param>
/// <param name="NullDependencySkips">Dependencies skipped by null-dependency elimination.</param>
/// <param name="StaleMessagesDropped">Messages dropped because they came from an older incarnation of their sender.</param>
/// <param name="ActivatedAt">When this activation started.</param>
/// <param name="Wakeups">Timer wake-ups this activation ran (deadline ticker and grain timer).</param>
/// <param name="Diagnostics">The protocol core's own description: views, candidacies, execution heads and the entries they wait for, open proposals.</param>
/// <param name="Checkpoints">Checkpoints this activation wrote (each lets the log's older segments go).</param>
/// <param name="LogFirstEntry">The first entry the replica's log still holds (above 0 once a checkpoint let segments go).</param>
/// <param name="LogEntries">One past the replica's last log entry.</param>
/// <param name="Base0">Entries of Copilot log 0 below this were compacted (committed at every replica).</param>
/// <param name="Base1">Entries of Copilot log 1 below this were compacted.</param>
/// <param name="FirstWindow">The oldest window the sequencer state still holds (above 0 once the log was trimmed).</param>
/// <param name="Role">"Replica"; "Probing" or "Rebuilding" while a replica that started with no state learns whether the ordering layer is new or it lost its disk, and copies a donor's state.</param>
/// <param name="LastCheckpointBytes">Size of the newest checkpoint this replica wrote or recovered from (it grows with the entries not yet compacted everywhere).</param>
/// <param name="RebuildBytes">Bytes this activation pulled from a donor when it rebuilt after a disk loss (0 if it did not).</param>
/// <param name="View0">The highest view (ballot) this replica promised for log 0, e.g. <c>b3.1</c>: round 3 of replica 1.</param>
/// <param name="View1">The highest view (ballot) this replica promised for log 1.</param>
[GenerateSerializer, Immutable, Alias("speclog.ReplicaStatus")]
public sealed record ReplicaStatus(
    [property: Id(0)] int Replica,
    [property: Id(1)] long Epoch,
    [property: Id(2)] string Silo,
    [property: Id(3)] string Mode,
    [property: Id(4)] int ReplicaCount,
    [property: Id(5)] int Pilot0,
    [property: Id(6)] int Pilot1,
    [property: Id(7)] bool ActivePilot0,
    [property: Id(8)] bool ActivePilot1,
    [property: Id(9)] long Executed0,
    [property: Id(10)] long Executed1,
    [property: Id(11)] long CommandsExecuted,
    [property: Id(12)] long FastCommits,
    [property: Id(13)] long SlowPaths,
    [property: Id(14)] long Takeovers,
    [property: Id(15)] long ViewsWon,
    [property: Id(16)] long NullDependencySkips,
    [property: Id(17)] long StaleMessagesDropped,
    [property: Id(18)] DateTimeOffset ActivatedAt,
    [property: Id(19)] long Wakeups,
    [property: Id(20)] string Diagnostics = "",
    [property: Id(21)] long Checkpoints = 0,
    [property: Id(22)] long LogFirstEntry = 0,
    [property: Id(23)] long LogEntries = 0,
    [property: Id(24)] long Base0 = 0,
    [property: Id(25)] long Base1 = 0,
    [property: Id(26)] int FirstWindow = 0,
    [property: Id(27)] string Role = "Replica",
    [property: Id(28)] long LastCheckpointBytes = 0,
    [property: Id(29)] long RebuildBytes = 0,
    [property: Id(30)] string View0 = "",
    [property: Id(31)] string View1 = "");

/// <summary>One chunk of a donor's transfer checkpoint (<see cref="ISequencerReplicaGrain.GetTransferChunkAsync"/>).</summary>
/// <param name="Chunks">How many chunks the whole transfer has.</param>
/// <param name="TotalBytes">The whole transfer's length.</param>
/// <param name="Bytes">This chunk's bytes.</param>
[GenerateSerializer, Immutable, Alias("speclog.TransferChunk")]
public sealed record TransferChunk(
    [property: Id(0)] int Chunks,
    [property: Id(1)] long TotalBytes,
    [property: Id(2)] byte[] Bytes);

/// <summary>What an ordering replica answers a blank replica's probe (<see cref="ISequencerReplicaGrain.OrderingProbe"/>).</summary>
/// <param name="From">The answering replica.</param>
/// <param name="Epoch">Its incarnation (the asker remembers it as the peer's newest).</param>
/// <param name="HasState">False when it is blank (probing) itself.</param>
/// <param name="KnownEpochOfAsker">The asker's newest incarnation it knows: a rebuilt asker must start above it (its packets are dropped otherwise).</param>
/// <param name="Executed">Entries it executed (both logs): the asker copies the most advanced.</param>
/// <param name="Floor">Its contribution to the asker's rebuild floor (promises, known entries, ballot rounds), as an encoded replica record; null when blank.</param>
[GenerateSerializer, Immutable, Alias("speclog.OrderingProbeAnswer")]
public sealed record OrderingProbeAnswer(
    [property: Id(0)] int From,
    [property: Id(1)] long Epoch,
    [property: Id(2)] bool HasState,
    [property: Id(3)] long KnownEpochOfAsker,
    [property: Id(4)] long Executed,
    [property: Id(5)] byte[]? Floor);
