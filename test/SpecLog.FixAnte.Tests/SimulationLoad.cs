namespace SpecLog.FixAnte.Tests;

/// <summary>
/// The workload, disk and network of a <see cref="Simulation"/> run. The default is the randomised one of the
/// end-to-end tests: random load phases per shard, one disk write per append call (20–300 µs) and W of 8, 20 or 50.
/// </summary>
internal sealed record SimulationLoad
{
    /// <summary>W; null picks 8, 20 or 50 at random.</summary>
    public int? CutsPerWindow { get; init; }

    /// <summary>
    /// Steady load: every shard receives this many records per millisecond, exactly on average (as a client sending
    /// to the shards in turn does), in client batches <see cref="BatchGapMinMicros"/>..<see cref="BatchGapMaxMicros"/>
    /// apart that carry whatever accumulated since the previous one. Null: random phases (idle, slow, medium, fast, burst).
    /// </summary>
    public double? SteadyRecordsPerMs { get; init; }

    /// <summary>Shortest gap between client batches of the steady load (µs).</summary>
    public int BatchGapMinMicros { get; init; } = 1_000;

    /// <summary>Longest gap between client batches of the steady load (µs).</summary>
    public int BatchGapMaxMicros { get; init; } = 1_000;

    /// <summary>
    /// With <see cref="SteadyRecordsPerMs"/>: the records go through a client batcher per shard, as SpecLogClient's
    /// AppendBatcher does: they queue at the client, which keeps at most <see cref="ClientMaxInFlight"/> batch calls
    /// outstanding per shard; a call carries everything queued when it is sent and completes when the shard acknowledges
    /// it (its records committed, plus the network back). Batches then grow with the commit latency and arrive together
    /// after commit notices, as in the shards bench. The client is topped up every BatchGapMin..BatchGapMax µs.
    /// </summary>
    public bool ClientBatching { get; init; }

    /// <summary>Outstanding batch calls per shard (AppendBatcher.MaxInFlight).</summary>
    public int ClientMaxInFlight { get; init; } = 4;

    /// <summary>Extra records one shard receives at once at <see cref="BurstAtMicros"/> (0: none).</summary>
    public int BurstRecords { get; init; }

    /// <summary>When the burst of <see cref="BurstRecords"/> arrives at <see cref="BurstShard"/>.</summary>
    public long BurstAtMicros { get; init; }

    /// <summary>The shard that receives the burst.</summary>
    public int BurstShard { get; init; }

    /// <summary>A shard whose appends stop at <see cref="StopAtMicros"/> (null: none).</summary>
    public int? StoppedShard { get; init; }

    /// <summary>When <see cref="StoppedShard"/>'s appends stop.</summary>
    public long StopAtMicros { get; init; }

    /// <summary>
    /// Group commit: a shard has one flush in flight, which takes FlushMin..FlushMax µs and makes durable everything
    /// assigned when it started; what arrives meanwhile waits for the next flush (as ShardGrain's flush loop does).
    /// Off: every append call is its own write of 20–300 µs, completed in order.
    /// </summary>
    public bool GroupCommit { get; init; }

    /// <summary>Shortest flush (group commit).</summary>
    public int FlushMinMicros { get; init; }

    /// <summary>Longest flush (group commit).</summary>
    public int FlushMaxMicros { get; init; }

    /// <summary>A straggler: a shard whose every disk write takes <see cref="SlowDiskMicros"/> longer (null: none).</summary>
    public int? SlowShard { get; init; }

    /// <summary>The extra time of <see cref="SlowShard"/>'s disk writes (µs).</summary>
    public int SlowDiskMicros { get; init; }

    /// <summary>One-way network delay, shortest.</summary>
    public int NetMinMicros { get; init; } = 20;

    /// <summary>One-way network delay, longest.</summary>
    public int NetMaxMicros { get; init; } = 500;

    /// <summary>Appends stop at this time (µs).</summary>
    public long AppendStopMicros { get; init; } = 150_000;

    /// <summary>The run ends at this time (µs).</summary>
    public long EndMicros { get; init; } = 260_000;

    /// <summary>The measured period (no-op fraction, lag-fixes, cut pace) starts here and ends at <see cref="AppendStopMicros"/>.</summary>
    public long MeasureFromMicros { get; init; }

    /// <summary>Shards at the start.</summary>
    public int InitialShards { get; init; } = 4;

    /// <summary>
    /// Changes of the shard set, sent to the sequencer at the given time: a <see cref="ShardControl.Join"/> names the
    /// next shard id; a <see cref="ShardControl.Leave"/> any shard. A joined shard starts with the random load; a
    /// departed one stops receiving appends once it learns it left (a client moves on).
    /// </summary>
    public IReadOnlyList<(long AtMicros, ShardControl Change, int Shard)> ShardChanges { get; init; } = [];

    /// <summary>
    /// Whole-shard failures: at the time the shard stops for good (no more disk completions, reports, notices or
    /// appends), and <see cref="FailureDetectionMicros"/> later the sequencer is told it failed.
    /// </summary>
    public IReadOnlyList<(long AtMicros, int Shard)> ShardFailures { get; init; } = [];

    /// <summary>
    /// Failed shards coming back: at the time the shard restarts from what was durable (what it had not made durable
    /// is lost), learns the windows, asks to rejoin with the slots it holds, and takes appends again once a window
    /// makes it a member.
    /// </summary>
    public IReadOnlyList<(long AtMicros, int Shard)> ShardRejoins { get; init; } = [];

    /// <summary>From a shard's failure to the sequencer's <see cref="ShardControl.Fail"/> (µs).</summary>
    public long FailureDetectionMicros { get; init; } = 5_000;

    /// <summary>Changes to the default options (after W and the mode are set).</summary>
    public Action<FixAnteOptions>? Configure { get; init; }
}

/// <summary>What a simulation measured over <see cref="SimulationLoad.MeasureFromMicros"/>..<see cref="SimulationLoad.AppendStopMicros"/>.</summary>
internal sealed record SimulationMeasure(
    long Records,
    long NoOpSlots,
    long LagFixNoOpSlots,
    long LagFixes,
    long LagFixesToLeader,
    long Cuts,
    double Millis,
    long CommitP50Micros,
    long CommitP99Micros)
{
    /// <summary>No-op slots ÷ (no-op slots + records), as the shards bench computes it.</summary>
    public double NoOpFraction => Records + NoOpSlots == 0 ? 0 : (double)NoOpSlots / (Records + NoOpSlots);

    /// <summary>Committed cuts per millisecond.</summary>
    public double CutsPerMs => Cuts / Millis;

    public override string ToString() => FormattableString.Invariant(
        $"measured {Millis:F0} ms: records {Records}, no-op slots {NoOpSlots} ({NoOpFraction * 100:F1} %, {LagFixNoOpSlots} of them lag-fix fills), lag-fixes {LagFixes} ({LagFixesToLeader} to the leader's cut), {CutsPerMs:F2} cuts/ms, record to commit p50 {CommitP50Micros} us p99 {CommitP99Micros} us");
}
