using SpecLog.Client;

namespace SpecLog.Consumer;

/// <summary>In what order a consumer applies records, and so what its state may depend on.</summary>
public enum ConsumerOrdering
{
    /// <summary>
    /// The whole log in GSN order, one state: a record is applied once every lower position is known. The state may
    /// depend on any record's order relative to any other.
    /// </summary>
    Gsn,

    /// <summary>
    /// Each shard's records in their order, one state per shard: a record is applied the moment its shard holds it
    /// durably, without waiting for other shards. For state that is per shard (or per key, with keys routed to shards).
    /// Required for consumer groups.
    /// </summary>
    PerShard,
}

/// <summary>What a rollback did, for the application to see (<see cref="SpeculativeConsumerOptions.OnRollback"/>).</summary>
/// <param name="Range">The mis-speculation notice.</param>
/// <param name="Shard">The shard whose state rolled back (-1 for the whole-log state of a GSN-ordered consumer).</param>
/// <param name="UndoneRecords">Applied records undone.</param>
/// <param name="DiscardedOutputs">Held outputs dropped (never released).</param>
public sealed record RollbackNotice(MisSpeculatedRange Range, int Shard, int UndoneRecords, long DiscardedOutputs);

/// <summary>Settings of a <see cref="SpeculativeConsumer{TState, TOutput}"/>.</summary>
public sealed class SpeculativeConsumerOptions
{
    /// <summary>Default for <see cref="SnapshotEvery"/>.</summary>
    public const int DEFAULT_SNAPSHOT_EVERY = 256;

    /// <summary>Default for <see cref="CheckpointInterval"/>.</summary>
    public static readonly TimeSpan DEFAULT_CHECKPOINT_INTERVAL = TimeSpan.FromSeconds(1);

    /// <summary>Default for <see cref="GroupLease"/>.</summary>
    public static readonly TimeSpan DEFAULT_GROUP_LEASE = TimeSpan.FromSeconds(6);

    /// <summary>GSN order over the whole log (default) or per shard.</summary>
    public ConsumerOrdering Ordering { get; set; } = ConsumerOrdering.Gsn;

    /// <summary>
    /// A copy of the state is kept every this many applied records; a rollback restores the newest copy before the
    /// mis-speculated range and re-applies the records after it. Smaller: faster rollbacks, more copying.
    /// </summary>
    public int SnapshotEvery { get; set; } = DEFAULT_SNAPSHOT_EVERY;

    /// <summary>Whether the consumer saves checkpoints (and resumes from them). Without, it starts at <see cref="StartGsn"/> every time.</summary>
    public bool Checkpoints { get; set; } = true;

    /// <summary>Whether checkpoints hold the state. Without, a restart resumes from the release point with a new state (for consumers whose state does not outlive a record).</summary>
    public bool CheckpointState { get; set; } = true;

    /// <summary>How often a checkpoint is saved while outputs are released (and once more when the consumer stops).</summary>
    public TimeSpan CheckpointInterval { get; set; } = DEFAULT_CHECKPOINT_INTERVAL;

    /// <summary>Where a consumer with no checkpoint starts.</summary>
    public long StartGsn { get; set; }

    /// <summary>
    /// Makes the consumer a member of the consumer group named by its name: the live members split the log's shards,
    /// each shard to one member at a time, rebalanced when members join, leave or die. Needs <see cref="ConsumerOrdering.PerShard"/>.
    /// </summary>
    public bool Group { get; set; }

    /// <summary>This member's name in its group (default: host, process id and a random suffix).</summary>
    public string? MemberId { get; set; }

    /// <summary>A member not heard from for this long is dead, and one that cannot renew it stops its shards; heartbeats go every third of it.</summary>
    public TimeSpan GroupLease { get; set; } = DEFAULT_GROUP_LEASE;

    /// <summary>Called after each rollback, on the consumer's loop.</summary>
    public Action<RollbackNotice>? OnRollback { get; set; }

    /// <summary>
    /// A server-side filter (null: the whole log): the consumer applies only the records whose tags it matches, and
    /// the shards send it nothing else. Its checkpoints still name positions of the whole log.
    /// </summary>
    public RecordFilter? Filter { get; set; }

    internal void Validate()
    {
        Filter?.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(SnapshotEvery, 1, nameof(SnapshotEvery));
        ArgumentOutOfRangeException.ThrowIfNegative(StartGsn, nameof(StartGsn));
        if (CheckpointInterval <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(CheckpointInterval), CheckpointInterval, "The checkpoint interval must be positive.");
        }

        if (Group && Ordering != ConsumerOrdering.PerShard)
        {
            throw new ArgumentException("A consumer group splits shards between its members: set Ordering = ConsumerOrdering.PerShard.", nameof(Group));
        }

        if (Group && !Checkpoints)
        {
            throw new ArgumentException("A consumer group hands shards over through their checkpoints: keep Checkpoints on.", nameof(Group));
        }

        if (GroupLease < TimeSpan.FromMilliseconds(300))
        {
            throw new ArgumentOutOfRangeException(nameof(GroupLease), GroupLease, "The group lease must be at least 300 ms.");
        }
    }
}
