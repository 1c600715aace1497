using SpecLog.Copilot;

namespace SpecLog.Server;

/// <summary>How the ordering layer (the sequencer) is replicated.</summary>
public enum SequencerReplication
{
    /// <summary>One sequencer grain with its own durable window log; a failed silo stops ordering until it returns.</summary>
    Single,

    /// <summary>n = 2f + 1 replicas running Copilot: two pilots order every report, so one slow or failed replica never slows the log.</summary>
    Copilot,

    /// <summary>n replicas running Multi-Paxos (one leader proposes), for comparison with Copilot.</summary>
    MultiPaxos,
}

/// <summary>Replication of the ordering layer. Bind from <c>SpecLog:Replication</c>.</summary>
public sealed class ReplicationOptions
{
    /// <summary>Single, Copilot (default) or MultiPaxos.</summary>
    public SequencerReplication Mode { get; set; } = SequencerReplication.Copilot;

    /// <summary>Number of replicas n = 2f + 1: 3 tolerates one failed silo, 5 tolerates two. Must not change while the log has data.</summary>
    public int Replicas { get; set; } = 3;

    /// <summary>How often each replica tells the others it is alive.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>How long a log's pilot may stay silent before the other replicas elect a new one (view change).</summary>
    public TimeSpan ElectionTimeout { get; set; } = TimeSpan.FromMilliseconds(300);

    /// <summary>How long a pilot lets its execution wait on the other pilot's uncommitted entries before it takes them over.</summary>
    public TimeSpan TakeoverTimeout { get; set; } = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// Longest a pilot holds a batch waiting for the other pilot's proposal (ping-pong batching). Keep it above the
    /// pilots' turn time (two hops, each after an fsync: 2–5 ms on a loaded 2-core machine); shorter, the pilots'
    /// proposals cross and most entries take the slow path.
    /// </summary>
    public TimeSpan PingPongWait { get; set; } = TimeSpan.FromMilliseconds(6);

    /// <summary>How long a proposal with a classic quorum of answers waits for a fast quorum before taking the slow path.</summary>
    public TimeSpan FastPathWait { get; set; } = TimeSpan.FromMilliseconds(2);

    /// <summary>How often unanswered protocol messages are sent again.</summary>
    public TimeSpan RetransmitInterval { get; set; } = TimeSpan.FromMilliseconds(20);

    /// <summary>Most shard reports in one log entry.</summary>
    public int MaxBatch { get; set; } = 256;

    /// <summary>
    /// A replica writes a checkpoint (its Copilot acceptor state and the sequencer state, see docs) and deletes its log's
    /// segments below it once the records it appended since the last one reach this many bytes, or that checkpoint's
    /// own size if larger: checkpoints cost at most as much as the log they replace, and a restart replays at most a
    /// checkpoint and as much again.
    /// </summary>
    public long CheckpointMinBytes { get; set; } = 4L << 20;

    /// <summary>True when the sequencer is replicated.</summary>
    public bool IsReplicated => Mode != SequencerReplication.Single;

    /// <summary>The protocol core's configuration (durations in microseconds).</summary>
    public CopilotOptions ToCopilotOptions() => new()
    {
        ReplicaCount = Replicas,
        Mode = Mode == SequencerReplication.MultiPaxos ? ReplicationMode.MultiPaxos : ReplicationMode.Copilot,
        HeartbeatInterval = Micros(HeartbeatInterval),
        ElectionTimeout = Micros(ElectionTimeout),
        TakeoverTimeout = Micros(TakeoverTimeout),
        PingPongWait = Micros(PingPongWait),
        FastPathWait = Micros(FastPathWait),
        RetransmitInterval = Micros(RetransmitInterval),
        BackoffBase = Micros(TakeoverTimeout),
        BackoffMax = Micros(ElectionTimeout) * 2,
        MaxBatch = MaxBatch,
    };

    /// <summary>Problems with the settings, each naming its setting (empty when usable).</summary>
    public IEnumerable<string> Problems()
    {
        if (!Enum.IsDefined(Mode))
        {
            yield return $"SpecLog:Replication:Mode must be Single, Copilot or MultiPaxos (got {Mode}).";
        }

        if (!IsReplicated)
        {
            yield break;
        }

        if (Replicas is < 3 or > 63 || Replicas % 2 == 0)
        {
            yield return $"SpecLog:Replication:Replicas must be odd and in [3, 63] (got {Replicas}); 3 tolerates one failure, 5 two.";
        }

        if (CheckpointMinBytes < 4096)
        {
            yield return $"SpecLog:Replication:CheckpointMinBytes must be at least 4096 (got {CheckpointMinBytes}).";
        }

        string? core = null;
        try
        {
            ToCopilotOptions().Validate();
        }
        catch (ArgumentException e)
        {
            core = e.Message;
        }

        if (core is not null && Replicas is >= 3 and <= 63 && Replicas % 2 == 1)
        {
            yield return "SpecLog:Replication: " + core;
        }
    }

    private static long Micros(TimeSpan t) => (long)t.TotalMicroseconds;
}
