namespace SpecLog.Copilot.Tests;

/// <summary>Per-test adjustments of a simulated schedule.</summary>
internal sealed class SimulationTweaks
{
    public long? TakeoverTimeout { get; set; }

    public long? PingPongWait { get; set; }

    public int? MaxBatch { get; set; }

    public bool Faults { get; set; } = true;

    public double? DropRate { get; set; }

    public double? DuplicateRate { get; set; }

    public long? MaxDelay { get; set; }

    public int? Clients { get; set; }

    public int? CommandsPerClient { get; set; }

    public long? ThinkTime { get; set; }

    /// <summary>Probability that a host compacts its replica after a call (drawn per schedule when null).</summary>
    public double? CompactionRate { get; set; }

    /// <summary>Probability that a host checkpoints its replica after a call (drawn per schedule when null).</summary>
    public double? CheckpointRate { get; set; }

    public int? CompactionChunk { get; set; }

    /// <summary>Slow this replica down by this much (µs, each way) for the whole run.</summary>
    public (int Replica, long Extra)? SlowReplica { get; set; }

    /// <summary>Probability that a crash also loses the replica's disk, which is then rebuilt (drawn per schedule when null).</summary>
    public double? DiskLossRate { get; set; }

    /// <summary>Broken on purpose: a rebuilt replica's floor has no known entries, so it never abstains (and guards nothing).</summary>
    public bool RebuildWithoutAbstention { get; set; }

    /// <summary>Broken on purpose: a rebuilt replica's compatibility check ignores the other log's abstained entries.</summary>
    public bool RebuildWithoutGuard { get; set; }

    /// <summary>Broken on purpose: the transfer copies the donor's votes (every entry's state, not only committed entries).</summary>
    public bool RebuildWithDonorVotes { get; set; }

    /// <summary>Broken on purpose: the rebuilt replica's view promises and rounds start from scratch instead of the floor's.</summary>
    public bool RebuildWithoutViewFloor { get; set; }
}
