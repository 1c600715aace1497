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
