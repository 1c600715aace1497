namespace SpecLog.Copilot;

/// <summary>Which replication protocol the replicas run.</summary>
public enum ReplicationMode
{
    /// <summary>Copilot: the pilot (log 0) and the copilot (log 1) both order every command, each in its own log.</summary>
    Copilot,

    /// <summary>Multi-Paxos, for comparison: only the pilot of log 0 proposes (Accept phase only); log 1 stays empty.</summary>
    MultiPaxos,
}

/// <summary>
/// Configuration of a replica group. Durations are in the host's time unit (the number passed as <c>now</c>); the
/// defaults assume microseconds.
/// </summary>
public sealed class CopilotOptions
{
    /// <summary>Number of replicas n = 2f + 1 (3 or 5 in practice; any odd number from 3 to 63 works).</summary>
    public int ReplicaCount { get; init; } = 3;

    /// <summary>Copilot or Multi-Paxos.</summary>
    public ReplicationMode Mode { get; init; } = ReplicationMode.Copilot;

    /// <summary>How often every replica broadcasts a heartbeat (views, activity, commit frontier).</summary>
    public long HeartbeatInterval { get; init; } = 20_000;

    /// <summary>How long without a heartbeat from a log's pilot before replicas elect a new pilot for that log.</summary>
    public long ElectionTimeout { get; init; } = 200_000;

    /// <summary>How long a pilot's execution may wait on uncommitted entries before it takes them over (Prepare).</summary>
    public long TakeoverTimeout { get; init; } = 10_000;

    /// <summary>
    /// Longest a pilot keeps a batch open waiting for the other pilot's FastAccept (ping-pong batching). Set it above
    /// the pilot-to-pilot round trip, or proposals cross and take the slow path.
    /// </summary>
    public long PingPongWait { get; init; } = 2_000;

    /// <summary>How long a proposer with f+1 FastAccept replies but no fast quorum yet waits before taking the slow path.</summary>
    public long FastPathWait { get; init; } = 2_000;

    /// <summary>How often unanswered FastAccept, Accept, Prepare, Commit and view messages are sent again.</summary>
    public long RetransmitInterval { get; init; } = 20_000;

    /// <summary>First retry delay of a preempted proposal or repeated takeover; doubles per attempt, randomised ×[1, 2).</summary>
    public long BackoffBase { get; init; } = 10_000;

    /// <summary>Cap of the exponential backoff.</summary>
    public long BackoffMax { get; init; } = 320_000;

    /// <summary>
    /// Pipeline window W: a pilot proposes entry s only when f+1 replicas, still promising its view, have acknowledged
    /// an entry at or after s - W - 1 (its anchor). A new pilot recovers W + 1 entries past the highest entry a
    /// majority reports, so an index an old pilot may have proposed is never proposed afresh by another view.
    /// </summary>
    public int PipelineWindow { get; init; } = 16;

    /// <summary>Most commands in one entry.</summary>
    public int MaxBatch { get; init; } = 256;

    /// <summary>Whether execution skips waiting on uncommitted entries whose commands have all executed already.</summary>
    public bool NullDependencyElimination { get; init; } = true;

    /// <summary>How many times a proposer resends Commit to a replica that has not acknowledged it (catch-up covers the rest).</summary>
    public int MaxCommitRetransmits { get; init; } = 10;

    /// <summary>Most committed entries sent in answer to one catch-up request.</summary>
    public int CatchUpBatch { get; init; } = 64;

    /// <summary>
    /// <see cref="Replica{T}.Compact()"/> drops a log's entries only once at least this many can go at once, so the cost of
    /// shifting the held entries is amortised over the chunk.
    /// </summary>
    public int CompactionChunk { get; init; } = 1024;

    /// <summary>Tolerated failures f = (n - 1) / 2.</summary>
    public int F => (ReplicaCount - 1) / 2;

    /// <summary>Fast quorum f + ⌊(f + 1) / 2⌋, including the proposing pilot (2 of 3, 3 of 5).</summary>
    public int FastQuorum => F + (F + 1) / 2;

    /// <summary>Classic quorum f + 1.</summary>
    public int SlowQuorum => F + 1;

    /// <summary>Throws if the configuration is unusable.</summary>
    public void Validate()
    {
        if (ReplicaCount < 3 || ReplicaCount > 63 || ReplicaCount % 2 == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(ReplicaCount), ReplicaCount, "Replica count must be odd, between 3 and 63.");
        }

        if (HeartbeatInterval <= 0 || ElectionTimeout <= HeartbeatInterval || TakeoverTimeout <= 0 || PingPongWait < 0
            || FastPathWait < 0 || RetransmitInterval <= 0 || BackoffBase <= 0 || BackoffMax < BackoffBase)
        {
            throw new ArgumentException("Timeouts must be positive, the election timeout above the heartbeat interval, and the backoff cap at least its base.");
        }

        if (PipelineWindow < 1 || MaxBatch < 1 || MaxCommitRetransmits < 1 || CatchUpBatch < 1 || CompactionChunk < 1)
        {
            throw new ArgumentException("Pipeline window, batch size, commit retransmits, catch-up batch and compaction chunk must be at least 1.");
        }
    }
}
