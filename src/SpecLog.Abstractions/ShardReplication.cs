namespace SpecLog;

/// <summary>
/// Grain keys of shard replicas: replica r of shard s is <c>IShardGrain</c> with key <c>s + (r &lt;&lt; 32)</c>, so replica
/// 0 has the plain shard id as its key (the only replica of an unreplicated log). A leader epoch e is led by replica
/// <c>e mod R</c>, so an epoch number alone names its leader.
/// </summary>
public static class ShardKeys
{
    /// <summary>The grain key of replica <paramref name="replica"/> of shard <paramref name="shard"/>.</summary>
    public static long Of(int shard, int replica) => shard + ((long)replica << 32);

    /// <summary>The keys of every replica of shards 0 … <paramref name="shards"/> − 1, shard by shard.</summary>
    public static IEnumerable<long> All(int shards, int replicas) =>
        Enumerable.Range(0, shards).SelectMany(s => Enumerable.Range(0, replicas).Select(r => Of(s, r)));

    /// <summary>The shard a key belongs to.</summary>
    public static int ShardOf(long key) => (int)(key & 0xFFFF_FFFF);

    /// <summary>The replica index a key names.</summary>
    public static int ReplicaOf(long key) => (int)(key >> 32);

    /// <summary>The replica that leads epoch <paramref name="epoch"/> of a shard with <paramref name="replicas"/> replicas.</summary>
    public static int LeaderOf(long epoch, int replicas) => replicas <= 1 ? 0 : (int)(epoch % replicas);
}

/// <summary>One log entry as shard replicas copy it: the entry kind and its stored bytes.</summary>
/// <param name="Kind">The entry kind (record, no-op run, identified record).</param>
/// <param name="Payload">The bytes stored in the log.</param>
[GenerateSerializer, Immutable, Alias("speclog.ReplicatedEntry")]
public readonly record struct ReplicatedEntry([property: Id(0)] byte Kind, [property: Id(1)] byte[] Payload);

/// <summary>
/// Leader → follower: entries from <paramref name="FirstIndex"/> on (none for a heartbeat). With
/// <paramref name="EpochNumbers"/> set it also asks the follower to join the leader's epoch: the follower keeps the
/// longest prefix of its log that agrees with the leader's epoch history and drops the rest.
/// </summary>
/// <param name="Epoch">The leader's epoch.</param>
/// <param name="FirstIndex">Log index of the first entry.</param>
/// <param name="Entries">The entries.</param>
/// <param name="EpochNumbers">The leader's epoch history (epochs, increasing), or null when the follower has joined.</param>
/// <param name="EpochStarts">The log index where each epoch of <paramref name="EpochNumbers"/> starts.</param>
/// <param name="Trim">The shard's trim point, so followers trim their logs too (null: never trimmed).</param>
/// <param name="Install">
/// True when the follower's log ends before the leader's first retained entry (<paramref name="FirstIndex"/>): the
/// follower drops its log and starts it again at <paramref name="FirstIndex"/> with these entries.
/// </param>
[GenerateSerializer, Immutable, Alias("speclog.ReplicaAppend")]
public sealed record ReplicaAppend(
    [property: Id(0)] long Epoch,
    [property: Id(1)] long FirstIndex,
    [property: Id(2)] ReplicatedEntry[] Entries,
    [property: Id(3)] long[]? EpochNumbers = null,
    [property: Id(4)] long[]? EpochStarts = null,
    [property: Id(5)] ShardTrim? Trim = null,
    [property: Id(6)] bool Install = false);

/// <summary>
/// A shard's trim point: every record below <paramref name="Gsn"/> (the shard's slots below <paramref name="Slot"/>)
/// is removed. <paramref name="AnchorIndex"/> is a log index at or below the entry holding the first retained slot,
/// whose entry starts at slot <paramref name="AnchorSlot"/>: whole log segments below it may be deleted, and a log that
/// starts anywhere at or below it recovers its slot numbering from it.
/// </summary>
/// <param name="Gsn">The first retained GSN.</param>
/// <param name="Slot">The shard's first retained slot.</param>
/// <param name="AnchorIndex">A log index whose slot is known.</param>
/// <param name="AnchorSlot">The first slot of the entry at <paramref name="AnchorIndex"/>.</param>
/// <param name="DedupFloor">
/// Per client id, the highest sequence number of an identified append the shard may no longer remember once the
/// records below the trim point are gone (those below it, and any it had forgotten already): a retry at or below it
/// that the shard does not remember is refused instead of written a second time. Null: none (never built).
/// </param>
[GenerateSerializer, Immutable, Alias("speclog.ShardTrim")]
public sealed record ShardTrim(
    [property: Id(0)] long Gsn,
    [property: Id(1)] long Slot,
    [property: Id(2)] long AnchorIndex,
    [property: Id(3)] long AnchorSlot,
    [property: Id(4)] Dictionary<Guid, long>? DedupFloor = null);

/// <summary>Follower → leader: where the follower's log stands.</summary>
/// <param name="Epoch">The highest epoch the follower has promised (above the leader's: the leader is deposed).</param>
/// <param name="From">The follower's replica index.</param>
/// <param name="Joined">True once the follower has joined <paramref name="Epoch"/> (holds the leader's epoch history).</param>
/// <param name="End">The follower's log end (entries written).</param>
/// <param name="Durable">The follower's durable log end (entries fsync'd).</param>
/// <param name="Gap">True when the follower refused entries that did not start at its end (the leader resends from <paramref name="End"/>).</param>
[GenerateSerializer, Immutable, Alias("speclog.ReplicaAck")]
public sealed record ReplicaAck(
    [property: Id(0)] long Epoch,
    [property: Id(1)] int From,
    [property: Id(2)] bool Joined,
    [property: Id(3)] long End,
    [property: Id(4)] long Durable,
    [property: Id(5)] bool Gap = false);

/// <summary>
/// Candidate → replica: asks for a vote for epoch <paramref name="Epoch"/> (led by replica Epoch mod R). A pre-vote
/// (<paramref name="Pre"/>) only asks whether the replica would vote, and changes nothing, so a replica that was cut off
/// and comes back cannot depose a leader that works.
/// </summary>
/// <param name="Epoch">The epoch the candidate would lead.</param>
/// <param name="LastEpoch">The epoch of the candidate's last log entry.</param>
/// <param name="End">The candidate's log end.</param>
/// <param name="Pre">True for a pre-vote.</param>
[GenerateSerializer, Immutable, Alias("speclog.ReplicaVoteRequest")]
public sealed record ReplicaVoteRequest([property: Id(0)] long Epoch, [property: Id(1)] long LastEpoch, [property: Id(2)] long End, [property: Id(3)] bool Pre = false);

/// <summary>Replica → candidate: the answer to a <see cref="ReplicaVoteRequest"/>.</summary>
/// <param name="Epoch">The highest epoch the voter has promised.</param>
/// <param name="From">The voter's replica index.</param>
/// <param name="Granted">True if the voter promised <paramref name="Epoch"/> to the candidate (or would, for a pre-vote).</param>
/// <param name="Pre">True when answering a pre-vote.</param>
[GenerateSerializer, Immutable, Alias("speclog.ReplicaVote")]
public sealed record ReplicaVote([property: Id(0)] long Epoch, [property: Id(1)] int From, [property: Id(2)] bool Granted, [property: Id(3)] bool Pre = false);

/// <summary>
/// A replica that starts with no state at all asks the others what they hold: if every one holds nothing either, the
/// shard is new; if any holds something, this replica replaces one whose disk was lost (or never had anything) and
/// must rebuild before it counts (see <see cref="ReplicaProbeReply"/>).
/// </summary>
/// <param name="From">The asking replica's index.</param>
[GenerateSerializer, Immutable, Alias("speclog.ReplicaProbe")]
public sealed record ReplicaProbe([property: Id(0)] int From);

/// <summary>Replica → a replica with no state: what this one holds.</summary>
/// <param name="From">The answering replica's index.</param>
/// <param name="Promised">The highest epoch it has promised.</param>
/// <param name="Blank">True if it holds nothing either: no promise, no epoch, no entry, not rebuilding.</param>
/// <param name="LastEpoch">The epoch of its last log entry, or -1.</param>
/// <param name="End">Its log end.</param>
[GenerateSerializer, Immutable, Alias("speclog.ReplicaProbeReply")]
public sealed record ReplicaProbeReply(
    [property: Id(0)] int From,
    [property: Id(1)] long Promised,
    [property: Id(2)] bool Blank,
    [property: Id(3)] long LastEpoch = -1,
    [property: Id(4)] long End = 0);

/// <summary>
/// The shard replica called does not lead its shard now: nothing was written. <see cref="LeaderEpoch"/> names the
/// epoch it last knew a leader for (its leader is replica <c>LeaderEpoch mod Replicas</c>), or -1. Retrying at the
/// leader is safe; <c>SpecLogClient</c> does it by itself.
/// </summary>
[GenerateSerializer, Alias("speclog.ShardNotLeaderException")]
public sealed class ShardNotLeaderException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ShardNotLeaderException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public ShardNotLeaderException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and a cause.</summary>
    public ShardNotLeaderException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception for a replica of <paramref name="shard"/> that knows <paramref name="leaderEpoch"/>'s leader.</summary>
    public ShardNotLeaderException(int shard, int replica, long leaderEpoch, int replicas)
        : base(leaderEpoch >= 0
            ? $"Replica {replica} of shard {shard} does not lead it; epoch {leaderEpoch} is led by replica {ShardKeys.LeaderOf(leaderEpoch, replicas)}."
            : $"Replica {replica} of shard {shard} does not lead it and knows no leader yet (an election is under way).")
    {
        Shard = shard;
        LeaderEpoch = leaderEpoch;
        Replicas = replicas;
    }

    /// <summary>The shard.</summary>
    [Id(0)]
    public int Shard { get; init; }

    /// <summary>The epoch whose leader the replica knows, or -1.</summary>
    [Id(1)]
    public long LeaderEpoch { get; init; } = -1;

    /// <summary>The shard's number of replicas.</summary>
    [Id(2)]
    public int Replicas { get; init; }
}
