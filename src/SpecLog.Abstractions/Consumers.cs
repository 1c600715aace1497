using Orleans.Concurrency;

namespace SpecLog;

/// <summary>
/// Where a consumer stands, saved so that a restart resumes there: the log from <see cref="Position"/> on is applied
/// again to <see cref="State"/>, and the outputs of records below <see cref="ReleasedThrough"/> are not released again.
/// </summary>
/// <param name="Position">The state holds exactly the records below this GSN (of the partition's shards).</param>
/// <param name="ReleasedThrough">The outputs of every record below this GSN were released (at least <see cref="Position"/>).</param>
/// <param name="State">The consumer's state at <see cref="Position"/>, serialized; null when the consumer keeps no state in checkpoints.</param>
/// <param name="SavedAtUtc">When the consumer took it.</param>
[GenerateSerializer, Immutable, Alias("speclog.ConsumerCheckpoint")]
public sealed record ConsumerCheckpoint(
    [property: Id(0)] long Position,
    [property: Id(1)] long ReleasedThrough,
    [property: Id(2)] byte[]? State,
    [property: Id(3)] DateTime SavedAtUtc);

/// <summary>What <see cref="IConsumerCheckpointGrain.AcquireAsync"/> gives the new owner of a partition: its fence and the last checkpoint.</summary>
/// <param name="Fence">Saves must carry it; a later acquisition raises it, which stops older owners' saves.</param>
/// <param name="Checkpoint">The last checkpoint saved, or null if none was.</param>
[GenerateSerializer, Immutable, Alias("speclog.CheckpointLease")]
public sealed record CheckpointLease([property: Id(0)] long Fence, [property: Id(1)] ConsumerCheckpoint? Checkpoint);

/// <summary>
/// A consumer's checkpoint for one partition (grain key <c>"{consumer}/{partition}"</c>; partition <c>all</c> for a
/// consumer of the whole log, the shard id for one shard of a consumer group), kept through Orleans grain persistence
/// in the storage provider named <see cref="ConsumerCheckpoints.StorageName"/> (Azure Blob storage in a cluster).
/// Owners are fenced: each <see cref="AcquireAsync"/> raises the fence durably, and a save with an older fence is
/// refused, so a consumer that lost its partition (paused, partitioned, restarted elsewhere) cannot overwrite the
/// checkpoint of the one that took over.
/// </summary>
[Alias("speclog.IConsumerCheckpointGrain")]
public interface IConsumerCheckpointGrain : IGrainWithStringKey
{
    /// <summary>Makes <paramref name="owner"/> the partition's owner: raises the fence (saved before it returns) and returns it with the last checkpoint.</summary>
    [Alias("Acquire")]
    Task<CheckpointLease> AcquireAsync(string owner);

    /// <summary>Saves <paramref name="checkpoint"/> (durably, before it returns) for the owner holding <paramref name="fence"/>.</summary>
    /// <exception cref="CheckpointFencedException">Another owner acquired the partition since: this one must stop.</exception>
    /// <exception cref="ArgumentException">The checkpoint goes back (its position or release point is below the saved one's).</exception>
    [Alias("Save")]
    Task SaveAsync(long fence, ConsumerCheckpoint checkpoint);

    /// <summary>The last checkpoint saved (null if none), without taking the partition.</summary>
    [Alias("Get")]
    Task<ConsumerCheckpoint?> GetAsync();

    /// <summary>The fence and the last checkpoint, without taking the partition: what the Orleans dashboard's Grain Details panel shows (it calls <c>GetState</c>).</summary>
    [Alias("GetState")]
    Task<CheckpointLease> GetState();
}

/// <summary>Names shared by the consumer library and the silo.</summary>
public static class ConsumerCheckpoints
{
    /// <summary>The grain storage provider that holds consumer checkpoints and consumer groups' state.</summary>
    public const string StorageName = "SpecLogCheckpoints";

    /// <summary>The partition name of a consumer that reads the whole log in GSN order.</summary>
    public const string WholeLog = "all";

    /// <summary>The checkpoint grain's key for <paramref name="consumer"/>'s <paramref name="partition"/>.</summary>
    public static string Key(string consumer, string partition) => $"{consumer}/{partition}";
}

/// <summary>A save refused because another owner acquired the partition since (a newer fence).</summary>
[GenerateSerializer, Alias("speclog.CheckpointFencedException")]
public sealed class CheckpointFencedException : Exception
{
    /// <summary>Creates the exception.</summary>
    public CheckpointFencedException(string partition, long fence, long current)
        : base($"Checkpoint of {partition} refused: it was taken over (fence {current}; this owner holds {fence}). This owner must stop processing it.")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public CheckpointFencedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with no message.</summary>
    public CheckpointFencedException()
    {
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    public CheckpointFencedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>The shards a consumer-group member may work on, as the group's coordinator last told it.</summary>
/// <param name="Generation">Raised whenever the group's assignment changes.</param>
/// <param name="Shards">The shards this member holds or may take now, in order.</param>
/// <param name="Members">The members the coordinator counts as alive.</param>
[GenerateSerializer, Immutable, Alias("speclog.GroupAssignment")]
public sealed record GroupAssignment([property: Id(0)] long Generation, [property: Id(1)] int[] Shards, [property: Id(2)] int Members);

/// <summary>A consumer group as its coordinator sees it.</summary>
/// <param name="Generation">The assignment's generation.</param>
/// <param name="Members">Each live member and the shards it holds (from its last heartbeat).</param>
/// <param name="Unassigned">Active shards no live member holds now (between a release and the next take, or while the group is empty).</param>
[GenerateSerializer, Immutable, Alias("speclog.GroupStatus")]
public sealed record GroupStatus([property: Id(0)] long Generation, [property: Id(1)] Dictionary<string, int[]> Members, [property: Id(2)] int[] Unassigned);

/// <summary>
/// The coordinator of a named consumer group (grain key = group name): splits the log's active shards between the live
/// members, each shard to one member at a time. Members call <see cref="HeartbeatAsync"/> every third of their lease
/// with the shards they hold; a member not heard from for its lease is dead and its shards move. A shard moves from one
/// live member to another only after the first reports it no longer holds it, so two members never work on the same
/// shard at once (a member that cannot reach the coordinator for a lease stops all its shards by itself).
/// </summary>
[Alias("speclog.IConsumerGroupGrain")]
public interface IConsumerGroupGrain : IGrainWithStringKey
{
    /// <summary>
    /// Joins the group or renews <paramref name="member"/>'s lease, telling the coordinator which shards it holds;
    /// returns the shards it may hold from now on (it must stop the others before its next heartbeat).
    /// </summary>
    [Alias("Heartbeat")]
    Task<GroupAssignment> HeartbeatAsync(string member, int[] held, TimeSpan lease);

    /// <summary>Leaves the group at once (after stopping every shard); its shards move to the others.</summary>
    [Alias("Leave")]
    Task LeaveAsync(string member);

    /// <summary>Who holds what.</summary>
    [Alias("GetStatus")]
    Task<GroupStatus> GetStatusAsync();

    /// <summary>The same as <see cref="GetStatusAsync"/>: the Orleans dashboard's Grain Details panel shows what a grain's <c>GetState</c> returns.</summary>
    [Alias("GetState")]
    Task<GroupStatus> GetState();
}
