using Microsoft.Extensions.Options;
using SpecLog.FixAnte;

namespace SpecLog.Server;

/// <summary>Settings of the log on a silo. Bind from the <c>SpecLog</c> configuration section.</summary>
public sealed class SpecLogOptions
{
    /// <summary>Default number of shards.</summary>
    public const int DEFAULT_SHARD_COUNT = 4;

    /// <summary>Default largest record, in bytes (1 MiB).</summary>
    public const int DEFAULT_MAX_RECORD_SIZE = 1 << 20;

    /// <summary>Default most records in one batched append.</summary>
    public const int DEFAULT_MAX_BATCH_RECORDS = 10_000;

    /// <summary>Default size of a shard log segment file (64 MiB).</summary>
    public const long DEFAULT_SEGMENT_SIZE = 64L << 20;

    /// <summary>Default data directory, relative to the working directory.</summary>
    public const string DEFAULT_DATA_DIRECTORY = "speclog-data";

    /// <summary>Default most entries in one push to a subscriber.</summary>
    public const int DEFAULT_PUSH_MAX_ENTRIES = 4096;

    /// <summary>Default most payload bytes in one push to a subscriber.</summary>
    public const int DEFAULT_PUSH_MAX_BYTES = 1 << 20;

    /// <summary>Default number of identified appends a shard remembers for exactly-once retries.</summary>
    public const int DEFAULT_DEDUP_WINDOW = 262_144;

    /// <summary>Default bytes of recent entries a shard keeps in memory for subscribers and reads.</summary>
    public const long DEFAULT_RECENT_CACHE_BYTES = 64L << 20;

    /// <summary>Number of shards (shard ids 0 … ShardCount−1). Must be the same on every silo and across restarts.</summary>
    public int ShardCount { get; set; } = DEFAULT_SHARD_COUNT;

    /// <summary>Where shard logs and the sequencer's window log live.</summary>
    public string DataDirectory { get; set; } = DEFAULT_DATA_DIRECTORY;

    /// <summary>
    /// Size of each shard log segment file. The next segment is zero-filled in the background ahead of need, so
    /// appends never extend a file; smaller segments mean less of that I/O at start (tests use 4 MiB).
    /// </summary>
    public long SegmentSize { get; set; } = DEFAULT_SEGMENT_SIZE;

    /// <summary>Largest record accepted, in bytes; larger appends are refused with an <see cref="ArgumentException"/>.</summary>
    public int MaxRecordSize { get; set; } = DEFAULT_MAX_RECORD_SIZE;

    /// <summary>Most records in one batched append.</summary>
    public int MaxBatchRecords { get; set; } = DEFAULT_MAX_BATCH_RECORDS;

    /// <summary>Whether storage fsyncs (fdatasync) before an entry counts as durable. Turn off only for throwaway tests.</summary>
    public bool Fsync { get; set; } = true;

    /// <summary>
    /// Whether every log on this silo (shards, sequencer, ordering replicas) makes its entries durable through one shared
    /// group commit: frames still go to each log's own files, but one fdatasync of a silo-wide journal covers all of
    /// them (<c>CommitJournal</c>), for disks whose cache flushes queue behind each other. Off by default: on the
    /// measured virtio disk concurrent fdatasyncs of separate files overlap (four logs: 16,700 fdatasyncs/s at 0.22 ms
    /// per flush, one shared journal: 6,600/s at 0.26 ms), and the shared commit made the ordering replicas slower
    /// (docs/performance.md). Only with <see cref="Fsync"/> on.
    /// </summary>
    public bool SharedGroupCommit { get; set; }

    /// <summary>Most entries in one push to a subscriber.</summary>
    public int PushMaxEntries { get; set; } = DEFAULT_PUSH_MAX_ENTRIES;

    /// <summary>Most payload bytes in one push to a subscriber.</summary>
    public int PushMaxBytes { get; set; } = DEFAULT_PUSH_MAX_BYTES;

    /// <summary>Bytes of recent entries each shard keeps in memory; older ones are read from disk.</summary>
    public long RecentCacheBytes { get; set; } = DEFAULT_RECENT_CACHE_BYTES;

    /// <summary>
    /// Identified appends (client id, sequence number) each shard remembers for exactly-once retries, about 64 bytes of
    /// memory each: a retry arriving after this many newer identified records of the shard is refused (never written
    /// twice). At 5,000 appends/s per shard the default covers 52 s, beyond the client's retry deadline.
    /// </summary>
    public int DedupWindow { get; set; } = DEFAULT_DEDUP_WINDOW;

    /// <summary>Fix-Ante ordering parameters (mode, W, T_ord, quotas, lag-fix).</summary>
    public FixAnteOptions Ordering { get; set; } = new();

    /// <summary>How the ordering layer is replicated (Copilot with three replicas by default).</summary>
    public ReplicationOptions Replication { get; set; } = new();

    /// <summary>
    /// The cluster's data nodes, by silo name (<c>Silo:NodeName</c>), in a fixed order that must stay the same on every
    /// silo and across restarts: shard i, ordering replica k and the single sequencer live on node
    /// <c>Nodes[key mod Nodes.Count]</c> and only there, because their logs are on that node's disk. Empty (the
    /// default) for one silo or an in-process test cluster, where every silo sees the same files.
    /// </summary>
    public List<string> Nodes { get; set; } = [];

    /// <summary>
    /// Replicas per shard, each on its own node with its own fsync'd log; an entry counts as durable once a majority of
    /// them hold it (all of them with <see cref="ShardDurability"/> = All). 0 (the default) means automatic: 3 when
    /// <see cref="Nodes"/> lists at least 3 nodes, as many as it lists otherwise, and 1 without nodes (one silo, which
    /// cannot place replicas elsewhere and so pays nothing for them). With nodes listed it is capped at their number.
    /// </summary>
    public int ShardReplicas { get; set; }

    /// <summary>When a shard entry counts as durable: on a majority of the shard's replicas (the default) or on all of them.</summary>
    public ShardDurability ShardDurability { get; set; } = ShardDurability.Majority;

    /// <summary>How often a shard's leader tells its followers it is alive.</summary>
    public TimeSpan ShardHeartbeat { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>
    /// How long a shard replica waits without hearing its leader before it stands for election (the owner of the next
    /// epoch; the others half of it longer per rank); a leader that hears no majority for three times this stops
    /// serving. Failover takes about this long plus one round of votes.
    /// </summary>
    public TimeSpan ShardElectionTimeout { get; set; } = TimeSpan.FromMilliseconds(400);

    /// <summary>
    /// How long the ordering layer waits for a shard that holds the log back (others wait for cuts it has not completed)
    /// and is not heard of before it declares the shard failed (<see cref="FixAnte.ShardControl.Fail"/>): the shard's
    /// slots beyond what it reported durable become no-ops, subscribers are told which records they got were
    /// mis-speculated, and the log goes on without it. Null (the default) chooses: 5 s with replicated shards (longer
    /// than a leader failover, so a failover never counts as a failure; only losing every replica does), off with one
    /// replica (a restarting silo brings its shards back, and nothing else could). <see cref="TimeSpan.Zero"/>: off.
    /// </summary>
    public TimeSpan? ShardFailureTimeout { get; set; }

    /// <summary><see cref="ShardFailureTimeout"/> after its automatic choice; null when failures are not detected.</summary>
    public TimeSpan? EffectiveShardFailureTimeout => ShardFailureTimeout is { } t
        ? (t > TimeSpan.Zero ? t : null)
        : EffectiveShardReplicas > 1 ? TimeSpan.FromSeconds(5) : null;

    /// <summary>The number of replicas each shard has, after <see cref="ShardReplicas"/>' automatic choice and cap.</summary>
    public int EffectiveShardReplicas => ShardReplicas > 0
        ? (Nodes.Count > 0 ? Math.Min(ShardReplicas, Nodes.Count) : ShardReplicas)
        : (Nodes.Count == 0 ? 1 : Math.Min(3, Nodes.Count));
}

/// <summary>When a shard entry counts as durable.</summary>
public enum ShardDurability
{
    /// <summary>Once a majority of the shard's replicas hold it fsync'd: one failed replica of three costs nothing.</summary>
    Majority,

    /// <summary>Once every replica holds it fsync'd (Belfast's rule): any failed replica stalls the shard until it is back.</summary>
    All,
}

/// <summary>Rejects <see cref="SpecLogOptions"/> that cannot work, with the setting named.</summary>
public sealed class SpecLogOptionsValidator : IValidateOptions<SpecLogOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, SpecLogOptions options)
    {
        var errors = new List<string>();
        if (options.ShardCount is < 1 or > 4096)
        {
            errors.Add($"SpecLog:ShardCount must be in [1, 4096] (got {options.ShardCount}).");
        }

        if (string.IsNullOrWhiteSpace(options.DataDirectory))
        {
            errors.Add("SpecLog:DataDirectory must be set.");
        }

        if (options.MaxRecordSize is < 1 or > 64 << 20)
        {
            errors.Add($"SpecLog:MaxRecordSize must be in [1, 64 MiB] (got {options.MaxRecordSize}).");
        }

        if (options.SegmentSize is < 1L << 20 or > 1L << 30)
        {
            errors.Add($"SpecLog:SegmentSize must be in [1 MiB, 1 GiB] (got {options.SegmentSize}).");
        }

        if (options.SegmentSize < (long)options.MaxRecordSize + 4096)
        {
            errors.Add($"SpecLog:SegmentSize ({options.SegmentSize}) must exceed MaxRecordSize ({options.MaxRecordSize}) by at least 4 KiB.");
        }

        if (options.MaxBatchRecords < 1)
        {
            errors.Add("SpecLog:MaxBatchRecords must be at least 1.");
        }

        if (options.PushMaxEntries < 1 || options.PushMaxBytes < 1)
        {
            errors.Add("SpecLog:PushMaxEntries and PushMaxBytes must be positive.");
        }

        if (options.DedupWindow < 1)
        {
            errors.Add($"SpecLog:DedupWindow must be at least 1 (got {options.DedupWindow}).");
        }

        errors.AddRange(options.Replication.Problems());
        if (options.Nodes.Any(string.IsNullOrWhiteSpace) || options.Nodes.Distinct(StringComparer.Ordinal).Count() != options.Nodes.Count)
        {
            errors.Add($"SpecLog:Nodes must be distinct, non-empty node names (got [{string.Join(", ", options.Nodes)}]).");
        }
        else if (options.Replication.IsReplicated && options.Nodes.Count > 0 && options.Nodes.Count < options.Replication.Replicas)
        {
            errors.Add($"SpecLog:Nodes lists {options.Nodes.Count} node(s) but SpecLog:Replication:Replicas is {options.Replication.Replicas}: each ordering replica needs a node of its own.");
        }
        if (options.ShardReplicas is < 0 or > 15)
        {
            errors.Add($"SpecLog:ShardReplicas must be in [0, 15] (0 = automatic; got {options.ShardReplicas}).");
        }

        if (options.ShardFailureTimeout < TimeSpan.Zero)
        {
            errors.Add($"SpecLog:ShardFailureTimeout must not be negative (got {options.ShardFailureTimeout}; 0 turns failure detection off).");
        }

        if (options.ShardHeartbeat <= TimeSpan.Zero || options.ShardElectionTimeout < 2 * options.ShardHeartbeat)
        {
            errors.Add($"SpecLog:ShardHeartbeat must be positive and SpecLog:ShardElectionTimeout at least twice it (got {options.ShardHeartbeat} and {options.ShardElectionTimeout}).");
        }

        try
        {
            options.Ordering.Validate();
        }
        catch (ArgumentException e)
        {
            errors.Add("SpecLog:Ordering: " + e.Message);
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
