namespace SpecLog.Server.Replication;

/// <summary>What the replication protocol needs from a replica's log and its persisted state; the grain implements it over a durable log, the simulator in memory.</summary>
internal interface IReplicaStorage
{
    /// <summary>Entries written (durable or not).</summary>
    long End { get; }

    /// <summary>Entries fsync'd.</summary>
    long Durable { get; }

    /// <summary>Up to <paramref name="maxEntries"/> entries (and about <paramref name="maxBytes"/> bytes, at least one) from <paramref name="from"/>.</summary>
    IReadOnlyList<ReplicatedEntry> Read(long from, int maxEntries, int maxBytes);

    /// <summary>Writes an entry copied from the leader at index <see cref="End"/>.</summary>
    void Append(ReplicatedEntry entry);

    /// <summary>Asks for everything written to become durable; completion is reported with <see cref="ShardReplicaCore.OnLocalDurable"/>.</summary>
    void Flush();

    /// <summary>Durably drops the entries from <paramref name="end"/> on (they disagree with the leader's log).</summary>
    void Truncate(long end);

    /// <summary>Makes <paramref name="meta"/> durable before anything that depends on it is sent.</summary>
    void Save(ReplicaMeta meta);

    /// <summary>The first entry still held (entries below it were trimmed); 0 for a log never trimmed.</summary>
    long FirstIndex { get; }

    /// <summary>The shard's trim point as this replica knows it (a leader sends it to its followers), or null.</summary>
    ShardTrim? Trim { get; }

    /// <summary>A follower learns the leader's trim point: it records it durably (if newer) and deletes the whole segments below it.</summary>
    void ApplyTrim(ShardTrim trim);

    /// <summary>
    /// A follower whose log ends before the leader's first retained entry drops its log and starts it again, empty, at
    /// <paramref name="firstIndex"/>, recording <paramref name="trim"/> first; <see cref="End"/> and <see cref="Durable"/>
    /// are <paramref name="firstIndex"/> afterwards.
    /// </summary>
    void Install(long firstIndex, ShardTrim trim);
}

/// <summary>How replicas reach each other (one-way messages; any may be lost, late, duplicated or reordered).</summary>
internal interface IReplicaTransport
{
    void Send(int to, ReplicaAppend message);

    void Send(int to, ReplicaAck message);

    void Send(int to, ReplicaVoteRequest message);

    void Send(int to, ReplicaVote message);

    void Send(int to, ReplicaProbe message);

    void Send(int to, ReplicaProbeReply message);
}
