using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using Orleans.Placement;
using SpecLog.Server.Placement;
using SpecLog.FixAnte;
using SpecLog.Server.Ordering;
using SpecLog.Server.Scheduling;
using SpecLog.Server.Diagnostics;
using SpecLog.Server.Hosting;
using SpecLog.Storage;

namespace SpecLog.Server.Grains;

/// <summary>
/// A shard: a thin host around <see cref="ShardCore"/> and a <see cref="DurableLog"/>. Appends are written with group
/// commit, given their GSN locally, delivered to subscribers as soon as they are durable, and acknowledged once the
/// ordering layer commits their cut. Reentrant: an append waiting for its cut never blocks other calls.
/// </summary>
[Reentrant]
[Immovable]
[ShardHomePlacement]
internal sealed partial class ShardGrain(
    IOptions<SpecLogOptions> options,
    IOrderingLayer ordering,
    DeadlineTicker deadlineTicker,
    TimeProvider timeProvider,
    SiloLogs siloLogs,
    NodeLiveness liveness,
    SiloStopping siloStopping,
    ILogger<ShardGrain> logger) : Grain, IShardGrain
{
    internal const byte RecordKind = 1;
    internal const byte NoOpKind = 2;
    internal const byte IdentifiedRecordKind = 3; // a record with its append id: client (16 bytes), sequence number (8), payload
    internal const byte TaggedRecordKind = 4; // an identified record with a tag: client (16), sequence number (8), tag length (u16), tag (UTF-8), payload
    internal const int AppendIdBytes = 24;
    internal const int MaxTagOverhead = 2 + RecordTags.MaxBytes;
    private const int SparseIndexEvery = 64;

    private readonly SpecLogOptions _options = options.Value;
    private readonly Queue<PendingAppend> _pending = new();
    private readonly Queue<(long StorageIndex, long SlotEnd, bool IsRecord)> _notYetDurable = new();
    private readonly List<(long Slot, long StorageIndex)> _sparseIndex = [];

    /// <summary>The slot of the log's first entry (0 unless the log was trimmed).</summary>
    private long _baseSlot;
    private readonly Dictionary<Guid, Subscriber> _subscribers = [];
    private readonly StageMarks _durableMarks = new();
    private readonly StageMarks _reportMarks = new();
    private readonly LatencyReservoir _appendLatency = new();   // received → acknowledged, while stage timing is on
    private readonly LatencyReservoir _deliveryLatency = new(); // durable → pushed to a subscriber, likewise
    private readonly long _epochMicros = DateTimeOffset.UnixEpoch.Ticks / 10;
    private int _shard;
    private string? _invalidReason;
    private ShardCore _core = null!;
    private DurableLog _log = null!;
    private CancellationTokenRegistration _stoppingRegistration;
    private bool _siloStopping;
    private EntryCache _cache = null!;
    private long _flushRequestedUpTo = -1;
    private bool _storageFailed;
    private long _durableRecords;
    private long _durableSlots;
    private IGrainTimer? _timer;
    private DeadlineTicker.Registration? _ticker;
    private DateTimeOffset _activatedAt;
    private bool _deactivating;
    private long _notices;
    private long _pushes;
    private long _wakeups;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var key = this.GetPrimaryKeyLong();
        _replicas = _options.EffectiveShardReplicas;
        var shardCount = _options.ShardCount;
        if (key >= 0 && ShardKeys.ShardOf(key) >= shardCount && ShardKeys.ReplicaOf(key) < _replicas)
        {
            // Beyond the configured shards: a shard added while the log serves exists if the ordering layer says so.
            shardCount = Math.Max(shardCount, (await ordering.GetStatusAsync()).ShardCount);
        }

        if (key < 0 || ShardKeys.ShardOf(key) >= shardCount || ShardKeys.ReplicaOf(key) >= _replicas)
        {
            // Stay active (idle collection removes it) and refuse every call with a clear error.
            _invalidReason = key >= 0 && ShardKeys.ShardOf(key) < shardCount
                ? $"Shard {ShardKeys.ShardOf(key)} has no replica {ShardKeys.ReplicaOf(key)}: it has {_replicas} (0 to {_replicas - 1})."
                : $"Unknown shard {(key >= 0 ? ShardKeys.ShardOf(key) : key)}: the log has {shardCount} shards (0 to {shardCount - 1}).";
            _replicas = 1;
            return;
        }

        _shard = ShardKeys.ShardOf(key);
        _replica = ShardKeys.ReplicaOf(key);
        _activatedAt = timeProvider.GetUtcNow();
        try
        {
            if (Replicated)
            {
                await ActivateReplicaAsync();
            }
            else
            {
                _log = await siloLogs.OpenAsync(LogOptions(Path.Combine(_options.DataDirectory, $"shard-{_shard}")));
                LoadTrim();
                await StartShardAsync(firstReportSeq: NowMicros());
            }
        }
        catch
        {
            // A failed activation is not deactivated: release the log (and its lock) so the next activation can open it.
            _replicationTimer?.Dispose();
            _ticker?.Dispose();
            _timer?.Dispose();
            if (_log is { } opened)
            {
                await siloLogs.CloseAsync(opened);
                _log = null!;
            }

            throw;
        }

        _stoppingRegistration = siloStopping.Token.Register(() => GrainContext.Scheduler.QueueAction(OnSiloStopping));
        await base.OnActivateAsync(cancellationToken);
    }

    /// <summary>The silo begins to stop: appends waiting for their commit fail now (see <see cref="SiloStopping"/>), and new ones are refused.</summary>
    private void OnSiloStopping()
    {
        _siloStopping = true;
        FailUncommitted(new AppendOutcomeUnknownException($"Shard {_shard}'s silo is stopping before the append was committed; its outcome is unknown (a retry with the same append ids is safe)."));
    }

    /// <summary>Refuses an append on a stopping silo (nothing written; the client sends it again, elsewhere).</summary>
    private void EnsureNotStopping()
    {
        if (_siloStopping)
        {
            throw new AppendOutcomeUnknownException($"Shard {_shard}'s silo is stopping; the append was not taken (a retry with the same append ids is safe).");
        }
    }

    /// <summary>Rebuilds the shard from its log and starts serving: reports, no-op deadlines, deliveries.</summary>
    private async Task StartShardAsync(long firstReportSeq)
    {
        _core = new ShardCore(_shard, _options.Ordering);
        _cache = new EntryCache(_options.RecentCacheBytes);
        _dedup = new AppendDeduplicator(_options.DedupWindow);
        var started = Stopwatch.GetTimestamp();
        var noOps = Recover();
        var recovered = Stopwatch.GetTimestamp();
        var windows = await ordering.GetWindowsAsync(0);
        _startTimes = (Stopwatch.GetElapsedTime(started, recovered), Stopwatch.GetElapsedTime(recovered));
        _core.Recover(_durableSlots, _durableRecords, noOps, windows.Windows, firstReportSeq, windows.Base);
        _core.OnCommitted(0, [], NowMicros());
        SkipVoidSlots(); // it rejoined after a failure, and stopped before it skipped the void
        LogActivated(logger, _shard, _durableSlots, _durableRecords, windows.Windows.Length);
        // The grain timer keeps the shard alive and drives retransmission; no-op deadlines need finer wake-ups than grain
        // timers give (they tick every few milliseconds), so the silo's deadline ticker wakes the shard for each one.
        var housekeeping = TimeSpan.FromMilliseconds(Math.Max(5, _options.Ordering.OrderingInterval.TotalMilliseconds * 20));
        _timer = this.RegisterGrainTimer(OnTimerAsync, new GrainTimerCreationOptions(housekeeping, housekeeping) { KeepAlive = true });
        _ticker = deadlineTicker.Register(GrainContext.Scheduler, OnWakeup);
        SendReport(NowMicros()); // tell the ordering layer where this shard stands
        ScheduleDeadline(NowMicros());
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _deactivating = true;
        _stoppingRegistration.Dispose();
        _ticker?.Dispose();
        _timer?.Dispose();
        _replicationTimer?.Dispose();
        if (_log is not null)
        {
            await siloLogs.CloseAsync(_log);
        }

        FailUncommitted(new AppendOutcomeUnknownException($"Shard {_shard} deactivated ({reason.Description}) before the append was committed; its outcome is unknown (a retry with the same append ids is safe)."));

        await base.OnDeactivateAsync(reason, cancellationToken);
    }

    public async Task<long> AppendAsync(byte[] payload, CancellationToken cancellationToken = default)
    {
        EnsureValid();
        EnsureNotStopping();
        ValidateRecord(payload, 0);
        await EnsureServingAsync(cancellationToken);
        EnsureMember();
        cancellationToken.ThrowIfCancellationRequested();
        var pending = new PendingAppend(AppendRecord(payload), 1, NowMicros());
        _pending.Enqueue(pending);
        AfterLocalAppend();
        var gsns = await pending.Task.WaitAsync(cancellationToken);
        return gsns[0];
    }

    public async Task<long[]> AppendBatchAsync(byte[][] payloads, CancellationToken cancellationToken = default)
    {
        EnsureValid();
        EnsureNotStopping();
        ValidateBatch(payloads);
        await EnsureServingAsync(cancellationToken);
        EnsureMember();
        cancellationToken.ThrowIfCancellationRequested();
        var first = -1L;
        foreach (var p in payloads)
        {
            var slot = AppendRecord(p);
            first = first < 0 ? slot : first;
        }

        var pending = new PendingAppend(first, payloads.Length, NowMicros());
        _pending.Enqueue(pending);
        AfterLocalAppend();
        return await pending.Task.WaitAsync(cancellationToken);
    }

    public Task<ShardReadResult> ReadAsync(long fromSlot, int maxEntries)
    {
        EnsureValid();
        EnsureServing();
        var limit = _core.DeliverableSlots;
        if (fromSlot < 0 || fromSlot > limit)
        {
            throw new ArgumentOutOfRangeException(nameof(fromSlot), fromSlot, $"Shard {_shard} can serve slots [0, {limit}) now.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(maxEntries, 1);
        EnsureNotTrimmed(fromSlot);
        var entries = Collect(fromSlot, limit, Math.Min(maxEntries, _options.PushMaxEntries), _options.PushMaxBytes, out _);
        return Task.FromResult(new ShardReadResult(_shard, entries, _core.CommittedSlots, _core.DurableSlots));
    }

    public Task SubscribeAsync(IShardObserver observer, Guid subscriptionId, long fromSlot, RecordFilter? filter = null)
    {
        EnsureValid();
        EnsureServing();
        ArgumentNullException.ThrowIfNull(observer);
        filter?.Validate();
        if (fromSlot < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(fromSlot), fromSlot, "Slots are numbered from 0.");
        }

        if (!_subscribers.TryGetValue(subscriptionId, out var sub))
        {
            EnsureNotTrimmed(fromSlot);
            sub = new Subscriber(subscriptionId, observer, fromSlot, filter?.CreateMatcher());
            _subscribers[subscriptionId] = sub;
            LogSubscribed(logger, _shard, subscriptionId, fromSlot);
        }

        sub.Observer = observer;
        var now = NowMicros();
        if (sub.InFlight && sub.PushStartedMicros < sub.RefreshedMicros)
        {
            // Its push has had no answer since before the previous refresh: presumed lost on the way (routed through a
            // gateway that died; Orleans would answer only at its response timeout). Push again from what the
            // subscriber acknowledged; if the old push arrives after all, the subscriber skips what it already has.
            sub.Generation++;
            sub.InFlight = false;
            LogPushAbandoned(logger, _shard, subscriptionId, sub.NextSlot);
        }

        sub.RefreshedMicros = now;
        Pump(sub);
        return Task.CompletedTask;
    }

    public Task UnsubscribeAsync(Guid subscriptionId)
    {
        EnsureValid();
        _subscribers.Remove(subscriptionId);
        return Task.CompletedTask;
    }

    public Task OnCommitted(CommitNotice notice)
    {
        if (_invalidReason is not null || (Replicated && !_serving))
        {
            return Task.CompletedTask;
        }

        var now = NowMicros();
        _notices++;
        SpecLogMetrics.Notices.Add(1);
        var wasMember = !_core.Departed;
        _core.OnCommitted(notice.CommittedCut, notice.Windows, now, notice.Waiting, notice.StateVersion, notice.Base);
        AfterShardSetNews(wasMember);

        if (notice.LagFixTargetCut > 0)
        {
            var n = _core.NoOpsForLagFix(notice.LagFixTargetCut);
            if (n > 0)
            {
                AppendNoOp(n);
                LogLagFix(logger, _shard, notice.LagFixTargetCut, n);
            }
        }

        AcknowledgeCommitted(now, notice.CommittedAtMicros);
        MaybeFillAndReport(now); // new windows may complete cuts; a change of who waits may start or stop filling
        MaybeCatchUpTrim(now);

        PumpAll();
        return Task.CompletedTask;
    }

    public Task<ShardStatus> GetStatusAsync()
    {
        EnsureValid();
        if (Replicated && !_serving)
        {
            return Task.FromResult(new ShardStatus(
                _shard, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, _options.Ordering.Mode.ToString(), _activatedAt,
                Replica: _replica, Replicas: _replicas, Role: ReplicaState,
                Epoch: _replication?.Promised ?? 0, LogEntries: _log?.NextIndex ?? 0, Silo: SiloName,
                LogFirstEntry: _log?.FirstIndex ?? 0, LogSegments: _log?.SegmentCount ?? 0, TrimmedBelowGsn: _trim?.Gsn ?? 0));
        }

        var w = _core.History.Last;
        return Task.FromResult(new ShardStatus(
            _shard,
            _core.DurableSlots,
            _core.DurableRecords,
            _core.NoOpSlots,
            _core.CommittedSlots,
            _core.CommittedCut,
            _core.History.Count,
            w?.QuotaOf(_shard) ?? 0,
            _core.ReportsSent,
            _core.LagFixes,
            _subscribers.Count,
            _pending.Sum(p => (long)p.Count),
            _options.Ordering.Mode.ToString(),
            _activatedAt,
            _core.WindowWaitMicros,
            _notices,
            _pushes,
            _wakeups,
            _core.CutIntervalMicros,
            _replica,
            _replicas,
            Replicated ? "Leader" : "Single",
            _replication?.LeaderEpoch ?? 0,
            _log.NextIndex,
            SiloName,
            _core.Departed,
            _log.FirstIndex,
            _log.SegmentCount,
            _trim?.Gsn ?? 0,
            Diagnose(),
            _core.DeliverableSlots,
            [.. _subscribers.Values.Select(s => new SubscriberPosition(s.Id, s.NextSlot, s.Filter is not null, s.InFlight))],
            _appendLatency.Summarise(),
            _deliveryLatency.Summarise()));
    }

    /// <inheritdoc />
    public Task<ShardStatus> GetState() => GetStatusAsync();

    private string Diagnose()
    {
        var now = NowMicros();
        var (report, notice) = _core.Clocks;
        return $"report seq {_core.ReportSeq}, active {_core.Active}, uncommitted records {_core.HasUncommittedRecords}, others waiting {_core.OthersWaiting}, last report {(now - report) / 1000} ms ago, last notice {(now - notice) / 1000} ms ago"
            + (_replication is { } r ? $"; log durable {_log.DurableIndex} of {_log.NextIndex}; peers: {r.DescribePeers(now)}" : "");
    }

    private string SiloName => GrainContext.Address.SiloAddress?.ToString() ?? "";

    private long NowMicros() => timeProvider.GetUtcNow().UtcTicks / 10 - _epochMicros;

    private void EnsureValid()
    {
        if (_invalidReason is not null)
        {
            throw new ArgumentOutOfRangeException("shard", _invalidReason);
        }
    }

    /// <summary>Refuses a batch that is empty, too long, or holds a bad record (checked whole, before anything is written).</summary>
    private void ValidateBatch(byte[][] payloads)
    {
        ArgumentNullException.ThrowIfNull(payloads);
        if (payloads.Length == 0)
        {
            throw new ArgumentException("A batch append needs at least one record.", nameof(payloads));
        }

        if (payloads.Length > _options.MaxBatchRecords)
        {
            throw new ArgumentException($"A batch holds at most {_options.MaxBatchRecords} records (got {payloads.Length}).", nameof(payloads));
        }

        for (var i = 0; i < payloads.Length; i++)
        {
            ValidateRecord(payloads[i], i);
        }
    }

    private void ValidateRecord(byte[]? payload, int index)
    {
        if (payload is null || payload.Length == 0)
        {
            throw new ArgumentException($"Record {index} is empty: a record must hold at least one byte.", nameof(payload));
        }

        if (payload.Length > _options.MaxRecordSize)
        {
            throw new ArgumentException($"Record {index} has {payload.Length} bytes; the largest record allowed is {_options.MaxRecordSize} bytes.", nameof(payload));
        }
    }

    private void OnWakeup()
    {
        if (!Leading)
        {
            return; // a wake-up queued before this replica stopped leading
        }

        _wakeups++;
        SpecLogMetrics.Wakeups.Add(1);
        MaybeFillAndReport(NowMicros());
    }

    private Task OnTimerAsync(CancellationToken cancellationToken)
    {
        if (!Leading)
        {
            return Task.CompletedTask;
        }

        MaybeFillAndReport(NowMicros());
        return Task.CompletedTask;
    }

    private void MaybeFillAndReport(long now)
    {
        MaybeRequestRejoin(now);
        var noOps = _core.NoOpsForDeadline(now);
        if (noOps > 0)
        {
            AppendNoOp(noOps);
        }

        if (_core.ReportDue(now))
        {
            SendReport(now);
        }

        ScheduleDeadline(now);
    }

    /// <summary>Asks the ticker for a wake-up at the next no-op deadline or held-back report (at the latest after one cut interval).</summary>
    private void ScheduleDeadline(long now)
    {
        if (!_core.Active)
        {
            return; // idle: the next append or notice wakes the shard
        }

        var wait = Math.Clamp(_core.NextDeadlineMicros - now, 0, _core.CutIntervalMicros);
        _ticker?.WakeIn(TimeSpan.FromMicroseconds(wait));
    }

    private void SendReport(long now)
    {
        if (!_deactivating && Leading)
        {
            var report = _core.MakeReport(now);
            SpecLogMetrics.Reports.Add(1);
            _reportMarks.Add(report.DurableSlots, now);
            SendToOrdering(report);
        }
    }

    /// <summary>Acknowledges every append whose slots are committed, and records the stages each passed through.</summary>
    private void AcknowledgeCommitted(long now, long committedAt)
    {
        var committed = _core.CommittedSlots;
        var final = _core.FinalSlots; // long.MaxValue unless the shard has left the log
        while (_pending.TryPeek(out var p) && Math.Min(p.FirstSlot + p.Count, final) <= committed)
        {
            _pending.Dequeue();
            if (p.FirstSlot + p.Count > final)
            {
                FailBeyondLastSlot(p);
                continue;
            }

            if (SpecLogMetrics.StageDuration.Enabled)
            {
                var end = p.FirstSlot + p.Count;
                var durableAt = _durableMarks.FirstCovering(end);
                var reportedAt = _reportMarks.FirstCovering(end);
                SpecLogMetrics.RecordStage(SpecLogMetrics.Stages.Durable, p.ReceivedMicros, durableAt);
                SpecLogMetrics.RecordStage(SpecLogMetrics.Stages.ReportWait, durableAt, reportedAt);
                SpecLogMetrics.RecordStage(SpecLogMetrics.Stages.Commit, reportedAt, committedAt);
                SpecLogMetrics.RecordStage(SpecLogMetrics.Stages.NoticeTransit, committedAt, now);
                SpecLogMetrics.RecordStage(SpecLogMetrics.Stages.ShardAppend, p.ReceivedMicros, now);
                _appendLatency.Record(p.ReceivedMicros, now);
            }

            var gsns = new long[p.Count];
            for (var i = 0; i < gsns.Length; i++)
            {
                gsns[i] = _core.History.GsnOfSlot(_shard, p.FirstSlot + i);
            }

            p.Complete(gsns);
        }

        CompleteRetriedAppends(committed);
        TraceCommitted(committed);
        TrimMarks();
    }

    /// <summary>Forgets stage marks no pending append and no subscriber can still need.</summary>
    private void TrimMarks()
    {
        var keep = _pending.TryPeek(out var next) ? next.FirstSlot + 1 : _core.DurableSlots + 1;
        foreach (var sub in _subscribers.Values)
        {
            keep = Math.Min(keep, sub.NextSlot + 1);
        }

        _durableMarks.TrimBelow(keep);
        _reportMarks.TrimBelow(keep);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Shard {Shard} activated: {Slots} durable slots, {Records} records, {Windows} windows known")]
    private static partial void LogActivated(ILogger logger, int shard, long slots, long records, int windows);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Shard {Shard}: subscription {Subscription} from slot {FromSlot}")]
    private static partial void LogSubscribed(ILogger logger, int shard, Guid subscription, long fromSlot);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Shard {Shard}: lag-fix to cut {Target}, {Slots} no-op slots")]
    private static partial void LogLagFix(ILogger logger, int shard, long target, long slots);

    [LoggerMessage(Level = LogLevel.Information, Message = "Shard {Shard}: subscriber {Subscription} is not reading (its buffer is full); dropped at slot {Slot} until it subscribes again")]
    private static partial void LogSubscriberStalled(ILogger logger, int shard, Guid subscription, long slot);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Shard {Shard}: subscriber {Subscription} dropped")]
    private static partial void LogSubscriberDropped(ILogger logger, Exception e, int shard, Guid subscription);

    [LoggerMessage(Level = LogLevel.Information, Message = "Shard {Shard}: the push to subscription {Subscription} had no answer for a refresh interval; pushing again from slot {Slot}")]
    private static partial void LogPushAbandoned(ILogger logger, int shard, Guid subscription, long slot);

    [LoggerMessage(Level = LogLevel.Error, Message = "Shard {Shard}: storage failed; pending appends failed and the shard deactivates")]
    private static partial void LogStorageFailure(ILogger logger, Exception e, int shard);
}
