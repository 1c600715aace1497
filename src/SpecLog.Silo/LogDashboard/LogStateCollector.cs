using Microsoft.Extensions.Options;
using SpecLog.FixAnte;
using SpecLog.Server;
using SpecLog.Silo.Observability;

namespace SpecLog.Silo.LogDashboard;

/// <summary>
/// Gathers the log page's <see cref="LogSnapshot"/> from the grains: the sequencer, every shard replica, every ordering
/// replica and the windows decided since the last look (quota history, voided slots). Every call is bounded
/// (<see cref="BoundedCall"/>), so a dead silo shows as "unreachable", never as a hung page. A snapshot younger than
/// <see cref="MinInterval"/> is served again, so several open pages cost the log no more than one.
/// </summary>
internal sealed class LogStateCollector(IGrainFactory grains, IOptions<SpecLogOptions> options, ILocalSiloDetails silo, TimeProvider time)
{
    /// <summary>How often the grains are asked at most.</summary>
    public static readonly TimeSpan MinInterval = TimeSpan.FromMilliseconds(500);

    /// <summary>Windows kept for the quota chart.</summary>
    public const int QuotaHistoryLength = 120;

    /// <summary>Void events kept.</summary>
    public const int MisSpeculationsKept = 50;

    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly Queue<QuotaPoint> _quotas = new();
    private readonly Queue<MisSpeculationView> _voids = new();
    private readonly Dictionary<int, long> _lastRecords = [];
    private long _nextWindow;
    private (DateTimeOffset At, long Cut, long Gsn)? _lastCommit;
    private DateTimeOffset _lastRecordsAt;
    private LogSnapshot? _last;

    /// <summary>The current snapshot (at most <see cref="MinInterval"/> old).</summary>
    public async Task<LogSnapshot> GetAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_last is { } last && time.GetUtcNow() - last.TakenAt < MinInterval)
            {
                return last;
            }

            _last = await CollectAsync(cancellationToken);
            return _last;
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<LogSnapshot> CollectAsync(CancellationToken ct)
    {
        var o = options.Value;
        var now = time.GetUtcNow();
        var sequencerGrain = grains.GetGrain<ISequencerGrain>(0);
        var sequencerTask = BoundedCall.Ask(() => sequencerGrain.GetStatusAsync(), ct);
        var replicasTask = o.Replication.IsReplicated
            ? Task.WhenAll(Enumerable.Range(0, o.Replication.Replicas).Select(r => AskReplicaAsync(r, ct)))
            : Task.FromResult(Array.Empty<OrderingReplicaView>());
        var sequencer = await sequencerTask;
        var shardCount = Math.Max(o.ShardCount, sequencer?.ShardCount ?? 0);
        var replicasPerShard = o.EffectiveShardReplicas;
        var shardStatuses = await Task.WhenAll(Enumerable.Range(0, shardCount).Select(s =>
            Task.WhenAll(Enumerable.Range(0, replicasPerShard).Select(r => BoundedCall.Ask(() => grains.GetGrain<IShardGrain>(ShardKeys.Of(s, r)).GetStatusAsync(), ct)))));
        if (sequencer is not null)
        {
            await ReadNewWindowsAsync(sequencerGrain, sequencer.Windows, ct);
        }

        var shards = new List<ShardView>();
        var subscribers = new List<SubscriberView>();
        var elapsed = (now - _lastRecordsAt).TotalSeconds;
        for (var s = 0; s < shardCount; s++)
        {
            var answers = shardStatuses[s];
            var roles = answers.Select((a, r) => a is null ? new ReplicaRole(r, "unreachable", "", 0) : new ReplicaRole(r, a.Role, a.Silo, a.Epoch)).ToList();
            var lead = answers.FirstOrDefault(a => a is not null && a.Role is "Leader" or "Single");
            var departed = sequencer?.DepartedShards?.Contains(s) ?? false;
            if (lead is null)
            {
                shards.Add(Unreachable(s, roles, sequencer, departed));
                continue;
            }

            var rate = _lastRecords.TryGetValue(s, out var before) && elapsed > 0 ? Math.Max(0, lead.DurableRecords - before) / elapsed : 0;
            _lastRecords[s] = lead.DurableRecords;
            shards.Add(new ShardView(
                s, $"replica {lead.Replica} on {lead.Silo}", roles,
                lead.DurableSlots, lead.DurableRecords, lead.NoOpSlots, lead.DurableSlots > 0 ? (double)lead.NoOpSlots / lead.DurableSlots : 0,
                lead.CommittedSlots, lead.DeliverableSlots, lead.CurrentQuota, rate, lead.LagFixes, lead.ReportsSent,
                sequencer?.GroundedShards?.Contains(s) ?? false, sequencer?.FailedShards?.Contains(s) ?? false, departed || lead.Departed,
                lead.PendingAppends, lead.Subscribers, lead.CutIntervalMicros / 1000.0, lead.AppendLatency, lead.DeliveryLatency, null));
            subscribers.AddRange((lead.SubscriberPositions ?? []).Select(p =>
                new SubscriberView(s, p.Subscriber, p.NextSlot, Math.Max(0, lead.DurableSlots - p.NextSlot), p.Filtered, p.InFlight)));
        }

        _lastRecordsAt = now;
        return new LogSnapshot(
            now, silo.SiloAddress.ToString(), o.Ordering.Mode.ToString(), o.Replication.Mode.ToString(),
            o.Replication.IsReplicated ? o.Replication.Replicas : 0, replicasPerShard,
            sequencer is null ? null : Describe(sequencer, now),
            shards, subscribers, await replicasTask, [.. _quotas], [.. _voids]);
    }

    private SequencerView Describe(SequencerStatus s, DateTimeOffset now)
    {
        double cutsPerSecond = 0, gsnsPerSecond = 0;
        if (_lastCommit is { } last && now > last.At)
        {
            var seconds = (now - last.At).TotalSeconds;
            cutsPerSecond = Math.Max(0, s.CommittedCut - last.Cut) / seconds;
            gsnsPerSecond = Math.Max(0, s.CommittedGsn - last.Gsn) / seconds;
        }

        _lastCommit = (now, s.CommittedCut, s.CommittedGsn);
        var w = s.CurrentWindow;
        return new SequencerView(
            s.CommittedCut, s.CommittedGsn, s.Windows, s.ReportsApplied, s.LagFixesIssued, s.LagFixesAcknowledged, s.Groundings,
            s.GroundedShards ?? [], s.FailedShards ?? [], s.DepartedShards ?? [], s.TrimmedBelowGsn,
            w is null ? null : new WindowView(w.Window, w.FirstCut, w.CutsPerWindow, w.CutSize, [.. w.Quotas], w.CutIntervalFactor, w.StartGsn, w.Layout.ToString()),
            cutsPerSecond, gsnsPerSecond);
    }

    /// <summary>Reads the windows decided since the last look (at most the last <see cref="QuotaHistoryLength"/> on the first), for quotas and voids.</summary>
    private async Task ReadNewWindowsAsync(ISequencerGrain sequencer, long windows, CancellationToken ct)
    {
        var from = Math.Max(_nextWindow, windows - QuotaHistoryLength);
        if (from >= windows)
        {
            return;
        }

        var slice = await BoundedCall.Ask(() => sequencer.GetWindowsAsync(from), ct);
        if (slice is null)
        {
            return;
        }

        foreach (var w in slice.Windows)
        {
            Add(_quotas, new QuotaPoint(w.Window, [.. w.Quotas]), QuotaHistoryLength);
            foreach (var v in w.Voids)
            {
                Add(_voids, new MisSpeculationView(w.Window, v.Shard, v.FromSlot, v.ToSlot, v.IsRejoin), MisSpeculationsKept);
            }

            _nextWindow = w.Window + 1;
        }
    }

    private async Task<OrderingReplicaView> AskReplicaAsync(int replica, CancellationToken ct)
    {
        var r = await BoundedCall.Ask(() => grains.GetGrain<ISequencerReplicaGrain>(replica).GetStatusAsync(), ct);
        return r is null
            ? new OrderingReplicaView(replica, "", "unreachable", 0, -1, -1, false, false, "", "", 0, 0, 0, 0, 0, 0, 0, 0, "no answer within " + BoundedCall.Timeout.TotalSeconds + " s")
            : new OrderingReplicaView(r.Replica, r.Silo, r.Role, r.Epoch, r.Pilot0, r.Pilot1, r.ActivePilot0, r.ActivePilot1, r.View0, r.View1,
                r.Executed0, r.Executed1, r.CommandsExecuted, r.FastCommits, r.SlowPaths, r.Takeovers, r.ViewsWon, r.NullDependencySkips, null);
    }

    private static ShardView Unreachable(int shard, IReadOnlyList<ReplicaRole> roles, SequencerStatus? sequencer, bool departed) => new(
        shard, "none", roles, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        sequencer?.GroundedShards?.Contains(shard) ?? false, sequencer?.FailedShards?.Contains(shard) ?? false, departed,
        0, 0, 0, null, null, departed ? "departed from the log" : "no replica leads or answers");

    private static void Add<T>(Queue<T> queue, T item, int limit)
    {
        queue.Enqueue(item);
        while (queue.Count > limit)
        {
            queue.Dequeue();
        }
    }
}
