namespace SpecLog.Silo.LogDashboard;

/// <summary>What the log page shows at one moment (<c>GET {LogPath}/api/state</c>, JSON): the whole log as the cluster reports it.</summary>
internal sealed record LogSnapshot(
    DateTimeOffset TakenAt,
    string Silo,
    string OrderingMode,
    string Replication,
    int OrderingReplicas,
    int ShardReplicas,
    SequencerView? Sequencer,
    IReadOnlyList<ShardView> Shards,
    IReadOnlyList<SubscriberView> Subscribers,
    IReadOnlyList<OrderingReplicaView> Ordering,
    IReadOnlyList<QuotaPoint> QuotaHistory,
    IReadOnlyList<MisSpeculationView> MisSpeculations);

/// <summary>The ordering layer's committed state, the current window and the cut clock's measured pace.</summary>
internal sealed record SequencerView(
    long CommittedCut,
    long CommittedGsn,
    long Windows,
    long ReportsApplied,
    long LagFixesIssued,
    long LagFixesAcknowledged,
    long Groundings,
    int[] GroundedShards,
    int[] FailedShards,
    int[] DepartedShards,
    long TrimmedBelowGsn,
    WindowView? CurrentWindow,
    double CutsPerSecond,
    double GsnsPerSecond);

/// <summary>One window's configuration.</summary>
internal sealed record WindowView(long Window, long FirstCut, int CutsPerWindow, long CutSize, int[] Quotas, int CutIntervalFactor, long StartGsn, string Layout);

/// <summary>One shard as its leading (or only) replica reports it, with the roles of its other replicas.</summary>
internal sealed record ShardView(
    int Shard,
    string Leader,
    IReadOnlyList<ReplicaRole> Replicas,
    long DurableSlots,
    long DurableRecords,
    long NoOpSlots,
    double NoOpShare,
    long CommittedSlots,
    long DeliverableSlots,
    int Quota,
    double RecordsPerSecond,
    long LagFixes,
    long ReportsSent,
    bool Grounded,
    bool Failed,
    bool Departed,
    long PendingAppends,
    int Subscribers,
    double CutIntervalMs,
    RecentLatency? AppendLatency,
    RecentLatency? DeliveryLatency,
    string? Error);

/// <summary>One replica of a shard: where it runs and what it is (Single, Leader, Follower, Probing …; "unreachable" when it did not answer).</summary>
internal sealed record ReplicaRole(int Replica, string Role, string Silo, long Epoch);

/// <summary>One subscription to one shard, and how many of the shard's durable slots it has not been sent yet.</summary>
internal sealed record SubscriberView(int Shard, Guid Subscriber, long NextSlot, long Behind, bool Filtered, bool InFlight);

/// <summary>One replica of the replicated ordering layer: the pilots it believes in, its views, its paths and view changes.</summary>
internal sealed record OrderingReplicaView(
    int Replica,
    string Silo,
    string Role,
    long Epoch,
    int Pilot0,
    int Pilot1,
    bool ActivePilot0,
    bool ActivePilot1,
    string View0,
    string View1,
    long Executed0,
    long Executed1,
    long CommandsExecuted,
    long FastCommits,
    long SlowPaths,
    long Takeovers,
    long ViewsWon,
    long NullDependencySkips,
    string? Error);

/// <summary>The quotas one window gave each shard (the quota chart's points).</summary>
internal sealed record QuotaPoint(long Window, int[] Quotas);

/// <summary>
/// A window that voided a shard's slots: the shard failed and the records it had delivered speculatively beyond what
/// it reported durable will not be confirmed (a mis-speculation; consumers roll them back), or it rejoined.
/// </summary>
internal sealed record MisSpeculationView(long Window, int Shard, long FromSlot, long ToSlot, bool Rejoin);
