using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using Orleans.Placement;
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
internal sealed partial class ShardGrain(
    IOptions<SpecLogOptions> options,
    IOrderingLayer ordering,
    DeadlineTicker deadlineTicker,
    TimeProvider timeProvider,
    SiloLogs siloLogs,
    ILogger<ShardGrain> logger) : Grain, IShardGrain
{
    internal const byte RecordKind = 1;
    internal const byte NoOpKind = 2;
    private const int SparseIndexEvery = 64;

    private readonly SpecLogOptions _options = options.Value;
    private readonly long _tOrdMicros = Math.Max(1, (long)(options.Value.Ordering.OrderingInterval.TotalMilliseconds * 1000));
    private readonly Queue<PendingAppend> _pending = new();
    private readonly Queue<(long StorageIndex, long SlotEnd, bool IsRecord)> _notYetDurable = new();
    private readonly List<(long Slot, long StorageIndex)> _sparseIndex = [];
    private readonly Dictionary<Guid, Subscriber> _subscribers = [];
    private readonly StageMarks _durableMarks = new();
    private readonly StageMarks _reportMarks = new();
    private readonly long _epochMicros = DateTimeOffset.UnixEpoch.Ticks / 10;
    private int _shard;
    private string? _invalidReason;
    private ShardCore _core = null!;
    private DurableLog _log = null!;
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
        if (key < 0 || key >= _options.ShardCount)
        {
            // Stay active (idle collection removes it) and refuse every call with a clear error.
            _invalidReason = $"Unknown shard {key}: the log has {_options.ShardCount} shards (0 to {_options.ShardCount - 1}).";
            return;
        }

        _shard = (int)key;
        _activatedAt = timeProvider.GetUtcNow();
        _core = new ShardCore(_shard, _options.Ordering);
        _cache = new EntryCache(_options.RecentCacheBytes);
        _log = await siloLogs.OpenAsync(new DurableLogOptions
        {
            Directory = Path.Combine(_options.DataDirectory, $"shard-{_shard}"),
            MaxEntrySize = Math.Max(_options.MaxRecordSize, 64),
            SegmentSize = _options.SegmentSize,
            Fsync = _options.Fsync,
        });
        var noOps = Recover();
        var windows = await ordering.GetWindowsAsync(0);
        _core.Recover(_durableSlots, _durableRecords, noOps, windows, firstReportSeq: NowMicros());
        _core.OnCommitted(0, [], NowMicros());
        LogActivated(logger, _shard, _durableSlots, _durableRecords, windows.Length);
        // The grain timer keeps the shard alive and drives retransmission; no-op deadlines need finer wake-ups than grain
        // timers give (they tick every few milliseconds), so the silo's deadline ticker wakes the shard for each one.
        var housekeeping = TimeSpan.FromMilliseconds(Math.Max(5, _options.Ordering.OrderingInterval.TotalMilliseconds * 20));
        _timer = this.RegisterGrainTimer(OnTimerAsync, new GrainTimerCreationOptions(housekeeping, housekeeping) { KeepAlive = true });
        _ticker = deadlineTicker.Register(GrainContext.Scheduler, OnWakeup);
        SendReport(NowMicros()); // tell the ordering layer where this shard stands
        ScheduleDeadline(NowMicros());
        await base.OnActivateAsync(cancellationToken);
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _deactivating = true;
        _ticker?.Dispose();
        _timer?.Dispose();
        if (_log is not null)
        {
            await siloLogs.CloseAsync(_log);
        }

        var error = new InvalidOperationException($"Shard {_shard} deactivated ({reason.Description}) before the append was committed; its outcome is unknown.");
        while (_pending.TryDequeue(out var p))
        {
            p.Fail(error);
        }

        await base.OnDeactivateAsync(reason, cancellationToken);
    }

    public async Task<long> AppendAsync(byte[] payload, CancellationToken cancellationToken = default)
    {
        EnsureValid();
        ValidateRecord(payload, 0);
        cancellationToken.ThrowIfCancellationRequested();
        var pending = new PendingAppend(AppendRecord(payload), 1, NowMicros());
        _pending.Enqueue(pending);
        EnsureFlushing();
        var gsns = await pending.Task.WaitAsync(cancellationToken);
        return gsns[0];
    }

    public Task<long[]> AppendBatchAsync(byte[][] payloads, CancellationToken cancellationToken = default)
    {
        EnsureValid();
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

        cancellationToken.ThrowIfCancellationRequested();
        var first = -1L;
        foreach (var p in payloads)
        {
            var slot = AppendRecord(p);
            first = first < 0 ? slot : first;
        }

        var pending = new PendingAppend(first, payloads.Length, NowMicros());
        _pending.Enqueue(pending);
        EnsureFlushing();
        return pending.Task.WaitAsync(cancellationToken);
    }

    public Task<ShardReadResult> ReadAsync(long fromSlot, int maxEntries)
    {
        EnsureValid();
        var limit = _core.DeliverableSlots;
        if (fromSlot < 0 || fromSlot > limit)
        {
            throw new ArgumentOutOfRangeException(nameof(fromSlot), fromSlot, $"Shard {_shard} can serve slots [0, {limit}) now.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(maxEntries, 1);
        var entries = Collect(fromSlot, limit, Math.Min(maxEntries, _options.PushMaxEntries), _options.PushMaxBytes, out _);
        return Task.FromResult(new ShardReadResult(_shard, entries, _core.CommittedSlots, _core.DurableSlots));
    }

    public Task SubscribeAsync(IShardObserver observer, Guid subscriptionId, long fromSlot)
    {
        EnsureValid();
        ArgumentNullException.ThrowIfNull(observer);
        if (fromSlot < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(fromSlot), fromSlot, "Slots are numbered from 0.");
        }

        if (!_subscribers.TryGetValue(subscriptionId, out var sub))
        {
            sub = new Subscriber(subscriptionId, observer, fromSlot);
            _subscribers[subscriptionId] = sub;
            LogSubscribed(logger, _shard, subscriptionId, fromSlot);
        }

        sub.Observer = observer;
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
        if (_invalidReason is not null)
        {
            return Task.CompletedTask;
        }

        var now = NowMicros();
        _notices++;
        SpecLogMetrics.Notices.Add(1);
        _core.OnCommitted(notice.CommittedCut, notice.Windows, now, notice.Waiting, notice.StateVersion);
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

        PumpAll();
        return Task.CompletedTask;
    }

    public Task<ShardStatus> GetStatusAsync()
    {
        EnsureValid();
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
            _core.CutIntervalMicros));
    }

    private long NowMicros() => timeProvider.GetUtcNow().UtcTicks / 10 - _epochMicros;

    private void EnsureValid()
    {
        if (_invalidReason is not null)
        {
            throw new ArgumentOutOfRangeException("shard", _invalidReason);
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

    private long AppendRecord(byte[] payload)
    {
        // Storage first: if it refuses (failed disk), no slot has been handed out.
        var index = _log.Append(RecordKind, payload);
        var slot = _core.AssignRecord();
        Track(new CachedEntry(slot, 1, index, payload));
        return slot;
    }

    private void AppendNoOp(long count)
    {
        Span<byte> payload = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(payload, count);
        var index = _log.Append(NoOpKind, payload);
        var slot = _core.AssignNoOp(count);
        SpecLogMetrics.NoOpSlots.Add(count);
        Track(new CachedEntry(slot, count, index, null));
        EnsureFlushing();
    }

    private void Track(in CachedEntry entry)
    {
        if (entry.StorageIndex % SparseIndexEvery == 0)
        {
            _sparseIndex.Add((entry.Slot, entry.StorageIndex));
        }

        _cache.Add(entry);
        _notYetDurable.Enqueue((entry.StorageIndex, entry.SlotEnd, !entry.IsNoOp));
    }

    /// <summary>
    /// Asks the log to make everything appended so far durable, at once: the log's writer starts that fsync the moment
    /// the one in flight returns, without waiting for this grain to see the previous one (one thread handoff less per
    /// group commit). Each call's completion runs <see cref="OnStorageDurable"/> on the grain; the log coalesces
    /// concurrent requests into one write and fsync.
    /// </summary>
    private void EnsureFlushing()
    {
        var next = _log.NextIndex;
        if (next > _flushRequestedUpTo && !_storageFailed)
        {
            _flushRequestedUpTo = next;
            FlushAsync().Ignore();
        }
    }

    private async Task FlushAsync()
    {
        try
        {
            var durable = await _log.FlushAsync();
            OnStorageDurable(durable);
        }
        catch (Exception e)
        {
            if (_storageFailed)
            {
                return; // the first failure already failed the pending appends
            }

            _storageFailed = true;
            LogStorageFailure(logger, e, _shard);
            while (_pending.TryDequeue(out var p))
            {
                p.Fail(e);
            }

            DeactivateOnIdle();
        }
    }

    private void OnStorageDurable(long durableIndex)
    {
        var records = _durableRecords;
        while (_notYetDurable.TryPeek(out var head) && head.StorageIndex < durableIndex)
        {
            _notYetDurable.Dequeue();
            _durableSlots = head.SlotEnd;
            _durableRecords += head.IsRecord ? 1 : 0;
        }

        var now = NowMicros();
        SpecLogMetrics.Records.Add(_durableRecords - records);
        _durableMarks.Add(_durableSlots, now);
        _core.OnDurable(_durableSlots, _durableRecords, now);
        _cache.Trim(durableIndex);
        MaybeFillAndReport(now);
        PumpAll();
    }

    private void OnWakeup()
    {
        _wakeups++;
        SpecLogMetrics.Wakeups.Add(1);
        MaybeFillAndReport(NowMicros());
    }

    private Task OnTimerAsync(CancellationToken cancellationToken)
    {
        MaybeFillAndReport(NowMicros());
        return Task.CompletedTask;
    }

    private void MaybeFillAndReport(long now)
    {
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

    /// <summary>Asks the ticker for a wake-up at the next no-op deadline (at the latest after one T_ord).</summary>
    private void ScheduleDeadline(long now)
    {
        if (!_core.Active)
        {
            return; // idle: the next append or notice wakes the shard
        }

        var wait = Math.Clamp(_core.NextDeadlineMicros - now, 0, Math.Max(_tOrdMicros, _core.CutIntervalMicros));
        _ticker?.WakeIn(TimeSpan.FromMicroseconds(wait));
    }

    private void SendReport(long now)
    {
        if (!_deactivating)
        {
            var report = _core.MakeReport(now);
            SpecLogMetrics.Reports.Add(1);
            _reportMarks.Add(report.DurableSlots, now);
            ordering.SendReport(report);
        }
    }

    /// <summary>Acknowledges every append whose slots are committed, and records the stages each passed through.</summary>
    private void AcknowledgeCommitted(long now, long committedAt)
    {
        var committed = _core.CommittedSlots;
        while (_pending.TryPeek(out var p) && p.FirstSlot + p.Count <= committed)
        {
            _pending.Dequeue();
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
            }

            var gsns = new long[p.Count];
            for (var i = 0; i < gsns.Length; i++)
            {
                gsns[i] = _core.History.GsnOfSlot(_shard, p.FirstSlot + i);
            }

            p.Complete(gsns);
        }

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

    private void PumpAll()
    {
        foreach (var sub in _subscribers.Values)
        {
            Pump(sub);
        }
    }

    private void Pump(Subscriber sub)
    {
        if (sub.InFlight)
        {
            return;
        }

        var limit = _core.DeliverableSlots;
        var confirmed = _core.CommittedGsn;
        var windows = _core.History.Count;
        if (sub.NextSlot >= limit && confirmed == sub.ConfirmedSent && windows == sub.KnownWindows)
        {
            return;
        }

        var toSlot = sub.NextSlot;
        ShardEntry[] entries = sub.NextSlot < limit
            ? Collect(sub.NextSlot, limit, _options.PushMaxEntries, _options.PushMaxBytes, out toSlot)
            : [];
        var newWindows = sub.KnownWindows < windows ? _core.History.Windows.Skip(sub.KnownWindows).ToArray() : [];
        var now = NowMicros();
        var batch = new ShardEventBatch(_shard, sub.NextSlot, toSlot, entries, newWindows, confirmed, 0, 0, now);
        if (toSlot > sub.NextSlot)
        {
            SpecLogMetrics.RecordStage(SpecLogMetrics.Stages.DeliverWait, _durableMarks.FirstCovering(toSlot), now);
        }

        _pushes++;
        SpecLogMetrics.Pushes.Add(1);
        sub.InFlight = true;
        PushAsync(sub, batch, windows).Ignore();
    }

    private async Task PushAsync(Subscriber sub, ShardEventBatch batch, int windows)
    {
        try
        {
            await sub.Observer.OnShardEvents(batch);
            sub.NextSlot = batch.ToSlot;
            sub.KnownWindows = windows;
            sub.ConfirmedSent = batch.ConfirmedGsn;
            sub.InFlight = false;
        }
        catch (Exception e)
        {
            // The subscriber is gone or broken; it resubscribes from its own position if it is still alive.
            if (_subscribers.TryGetValue(sub.Id, out var registered) && ReferenceEquals(registered, sub))
            {
                LogSubscriberDropped(logger, e, _shard, sub.Id);
                _subscribers.Remove(sub.Id);
            }

            return;
        }

        if (_subscribers.TryGetValue(sub.Id, out var current) && ReferenceEquals(current, sub))
        {
            Pump(sub);
        }
    }

    /// <summary>Consecutive entries covering slots [from, limit), cut to the budget; no-op runs are clipped to the range.</summary>
    private ShardEntry[] Collect(long from, long limit, int maxEntries, int maxBytes, out long toSlot)
    {
        var result = new List<ShardEntry>();
        var bytes = 0;
        var slot = from;
        if (slot < _cache.FirstSlot || _cache.Count == 0)
        {
            slot = CollectFromDisk(slot, Math.Min(limit, _cache.Count == 0 ? limit : _cache.FirstSlot), result, maxEntries, maxBytes, ref bytes);
        }

        if (slot < limit && result.Count < maxEntries && bytes < maxBytes)
        {
            var pos = _cache.Find(slot);
            while (pos >= 0 && pos < _cache.Count && slot < limit && result.Count < maxEntries && bytes < maxBytes)
            {
                ref readonly var e = ref _cache[pos];
                Emit(e.Slot, e.SlotCount, e.Payload, slot, limit, result, ref bytes);
                slot = Math.Min(e.SlotEnd, limit);
                pos++;
            }
        }

        toSlot = slot;
        return [.. result];
    }

    private long CollectFromDisk(long from, long limit, List<ShardEntry> result, int maxEntries, int maxBytes, ref int bytes)
    {
        // Start at the last sparse-index checkpoint at or before the slot, and walk forward.
        int lo = 0, hi = _sparseIndex.Count - 1, found = 0;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            if (_sparseIndex[mid].Slot <= from)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }

        var (slot, index) = _sparseIndex.Count == 0 ? (0L, 0L) : _sparseIndex[found];
        var position = from;
        while (position < limit && result.Count < maxEntries && bytes < maxBytes && index < _log.DurableIndex)
        {
            var chunk = _log.ReadRange(index, 256);
            if (chunk.Count == 0)
            {
                break;
            }

            foreach (var e in chunk)
            {
                var (count, payload) = Decode(e);
                if (slot + count > position && position < limit && result.Count < maxEntries && bytes < maxBytes)
                {
                    Emit(slot, count, payload, position, limit, result, ref bytes);
                    position = Math.Min(slot + count, limit);
                }

                slot += count;
                index++;
            }
        }

        return position;
    }

    private void Emit(long entrySlot, long count, byte[]? payload, long from, long limit, List<ShardEntry> result, ref int bytes)
    {
        if (payload is null)
        {
            var start = Math.Max(entrySlot, from);
            var end = Math.Min(entrySlot + count, limit);
            result.Add(new ShardEntry(start, -1, end - start, null));
            return;
        }

        result.Add(new ShardEntry(entrySlot, _core.History.GsnOfSlot(_shard, entrySlot), 0, payload));
        bytes += payload.Length;
    }

    private static (long Count, byte[]? Payload) Decode(in StoredEntry e) => e.Kind switch
    {
        RecordKind => (1, e.Payload.ToArray()),
        NoOpKind => (BinaryPrimitives.ReadInt64LittleEndian(e.Payload.Span), null),
        _ => throw new InvalidDataException($"Unknown entry kind {e.Kind} at storage index {e.Index}."),
    };

    /// <summary>Rebuilds slots, counts, the sparse index and the recent-entry cache from the log; returns the no-op slots.</summary>
    private long Recover()
    {
        long slot = 0, records = 0, noOps = 0;
        _cache.Reset(0);
        for (long index = 0; index < _log.NextIndex;)
        {
            var chunk = _log.ReadRange(index, 1024);
            foreach (var e in chunk)
            {
                var (count, payload) = Decode(e);
                if (e.Index % SparseIndexEvery == 0)
                {
                    _sparseIndex.Add((slot, e.Index));
                }

                _cache.Add(new CachedEntry(slot, count, e.Index, payload));
                _cache.Trim(_log.NextIndex);
                slot += count;
                records += payload is null ? 0 : 1;
                noOps += payload is null ? count : 0;
            }

            index += chunk.Count;
        }

        _durableSlots = slot;
        _durableRecords = records;
        return noOps;
    }

    private sealed class Subscriber(Guid id, IShardObserver observer, long nextSlot)
    {
        public Guid Id { get; } = id;

        public IShardObserver Observer { get; set; } = observer;

        public long NextSlot { get; set; } = nextSlot;

        public int KnownWindows { get; set; }

        public long ConfirmedSent { get; set; } = -1;

        public bool InFlight { get; set; }
    }

    private sealed class PendingAppend(long firstSlot, int count, long receivedMicros)
    {
        public long ReceivedMicros { get; } = receivedMicros;

        private readonly TaskCompletionSource<long[]> _tcs = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public long FirstSlot { get; } = firstSlot;

        public int Count { get; } = count;

        public Task<long[]> Task => _tcs.Task;

        public void Complete(long[] gsns) => _tcs.TrySetResult(gsns);

        public void Fail(Exception e) => _tcs.TrySetException(e);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Shard {Shard} activated: {Slots} durable slots, {Records} records, {Windows} windows known")]
    private static partial void LogActivated(ILogger logger, int shard, long slots, long records, int windows);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Shard {Shard}: subscription {Subscription} from slot {FromSlot}")]
    private static partial void LogSubscribed(ILogger logger, int shard, Guid subscription, long fromSlot);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Shard {Shard}: lag-fix to cut {Target}, {Slots} no-op slots")]
    private static partial void LogLagFix(ILogger logger, int shard, long target, long slots);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Shard {Shard}: subscriber {Subscription} dropped")]
    private static partial void LogSubscriberDropped(ILogger logger, Exception e, int shard, Guid subscription);

    [LoggerMessage(Level = LogLevel.Error, Message = "Shard {Shard}: storage failed; pending appends failed and the shard deactivates")]
    private static partial void LogStorageFailure(ILogger logger, Exception e, int shard);
}
