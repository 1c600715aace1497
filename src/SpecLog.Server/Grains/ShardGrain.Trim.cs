using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using SpecLog.Server.Replication;
using SpecLog.Storage;

namespace SpecLog.Server.Grains;

/// <summary>
/// Trimming: the shard's records below a GSN are removed. The trim point (<see cref="ShardTrim"/>) is written durably
/// before anything is deleted, then whole log segments below its anchor go; reads and subscriptions below the trim
/// point fail with <see cref="LogTrimmedException"/> from then on, even where a segment still holds the entries. A
/// log that starts after index 0 recovers its slot numbering from the anchor. Replicated shards: the leader trims and
/// sends the trim point with its heartbeats, and followers trim too; a follower whose log ends before the leader's
/// first retained entry (new, rebuilt, or far behind) starts its log again there (an install).
/// </summary>
internal sealed partial class ShardGrain
{
    private const int TrimMagic = 0x5350_5452; // "SPTR": the trim point alone (written before trims carried a dedup floor)
    private const int TrimFloorMagic = 0x5350_5432; // "SPT2": the trim point and its dedup floor

    private ShardTrim? _trim;
    private bool _trimCatchUpDue;
    private long _trimCatchUpTriedAt = long.MinValue / 2;

    ShardTrim? IReplicaStorage.Trim => _trim;

    long IReplicaStorage.FirstIndex => _log.FirstIndex;

    private string TrimPath => Replicated ? Path.Combine(_replicaDirectory, "trim.meta") : Path.Combine(_options.DataDirectory, $"shard-{_shard}.trim");

    public async Task<ShardTrim> TrimAsync(long gsn, long slot)
    {
        EnsureValid();
        EnsureServing();
        if (slot < 0 || slot > _core.CommittedSlots)
        {
            throw new ArgumentOutOfRangeException(
                nameof(slot), slot, $"Shard {_shard} can trim below committed slots only: its slots [0, {_core.CommittedSlots}) are committed.");
        }

        if (_trim is not { } current || current.Slot < slot)
        {
            TrimHere(gsn, slot);
        }

        // The trim point holds once a majority of the replicas recorded it, like an entry: a leader that loses its disk
        // right after must not take it along (a retry repeats this part).
        await ReplicateTrimAsync(_trim!);

        // The windows wholly below the trim point are no longer needed here either (the ordering layer drops them too).
        var history = _core.History;
        if (history.Count > 0 && _trim!.Gsn > history.FirstGsn)
        {
            history.TruncateBelow(_trim.Gsn >= history.KnownEndGsn ? history.Count - 1 : history.WindowOfGsn(_trim.Gsn));
        }

        return _trim!;
    }

    public Task ReplicaTrim(ShardTrim trim)
    {
        EnsureValid();
        ArgumentNullException.ThrowIfNull(trim);
        if (_log is null)
        {
            throw new InvalidOperationException($"Replica {_replica} of shard {_shard} has no log open.");
        }

        ((IReplicaStorage)this).ApplyTrim(trim);
        return Task.CompletedTask;
    }

    /// <summary>Sends the trim point to every other replica and waits until a majority, this one included, recorded it.</summary>
    private async Task ReplicateTrimAsync(ShardTrim trim)
    {
        if (!Replicated)
        {
            return;
        }

        var calls = Enumerable.Range(0, _replicas).Where(p => p != _replica).Select(p => Peer(p)?.ReplicaTrim(trim) ?? Task.FromException(new OrleansException($"replica {p}'s node is down")))
            .Select(t => t.WaitAsync(TimeSpan.FromSeconds(5))).ToList();
        var needed = (_replicas / 2) + 1 - 1; // this replica has it
        var recorded = 0;
        while (recorded < needed && calls.Count > 0)
        {
            var done = await Task.WhenAny(calls);
            calls.Remove(done);
            recorded += done.IsCompletedSuccessfully ? 1 : 0;
        }

        if (recorded < needed)
        {
            throw new TimeoutException(
                $"Shard {_shard}'s trim point (GSN {trim.Gsn}) reached {recorded + 1} of its {_replicas} replicas, fewer than a majority; the trim is retried (it is idempotent).");
        }
    }

    /// <summary>Records a new trim point here and deletes the whole segments below it.</summary>
    private void TrimHere(long gsn, long slot)
    {
        // The anchor: the last sparse-index point at or before the slot (its slot is known exactly), or the log's start.
        var (anchorSlot, anchorIndex) = (_baseSlot, _log.FirstIndex);
        foreach (var (s, index) in _sparseIndex)
        {
            if (s > slot)
            {
                break;
            }

            if (index >= _log.FirstIndex)
            {
                (anchorSlot, anchorIndex) = (s, index);
            }
        }

        var trim = new ShardTrim(gsn, slot, anchorIndex, anchorSlot, _dedup.FloorBelow(slot, _trim?.DedupFloor));
        SaveTrim(trim);
        DeleteTrimmedSegments(anchorIndex);
        LogTrimmed(logger, _shard, gsn, slot, _log.FirstIndex, _log.SegmentCount);
    }

    /// <summary>
    /// A failed shard misses the trims made while it was out (they skip it). Once it rejoined, it asks the ordering
    /// layer for the log's trim point (at most once a second, from a commit notice) and trims itself below it as soon
    /// as those slots are committed and durable here.
    /// </summary>
    private void MaybeCatchUpTrim(long now)
    {
        if (!_trimCatchUpDue || now - _trimCatchUpTriedAt < 1_000_000)
        {
            return;
        }

        _trimCatchUpTriedAt = now;
        CatchUpTrimAsync().Ignore();
    }

    private async Task CatchUpTrimAsync()
    {
        try
        {
            var gsn = (await ordering.GetStatusAsync()).TrimmedBelowGsn;
            var history = _core.History;
            if (_invalidReason is not null || gsn <= (_trim?.Gsn ?? 0) || history.Count == 0 || gsn < history.FirstGsn)
            {
                _trimCatchUpDue = false; // nothing missed (or nothing this shard can place)
                return;
            }

            var slot = history.SlotsBefore(_shard, gsn);
            if (slot > _core.CommittedSlots || slot > _durableSlots)
            {
                return; // not yet: tried again on a later notice
            }

            _trimCatchUpDue = false;
            if (_trim is not { } current || current.Slot < slot)
            {
                TrimHere(gsn, slot);
                LogTrimCaughtUp(logger, _shard, gsn, slot);
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            LogTrimCatchUpFailed(logger, e, _shard); // tried again on a later notice
        }
    }

    void IReplicaStorage.ApplyTrim(ShardTrim trim)
    {
        if (_trim is { } current && current.Slot >= trim.Slot)
        {
            return;
        }

        SaveTrim(trim);
        // Only what this follower holds durably: the anchor may lie past its log's end while it catches up.
        DeleteTrimmedSegments(Math.Min(trim.AnchorIndex, _log.DurableIndex));
    }

    void IReplicaStorage.Install(long firstIndex, ShardTrim trim)
    {
        // Like a truncation, the log is closed and opened again on a pool thread while this turn blocks (the protocol
        // goes on only once the new log exists). The trim point is recorded first, so a crash in between leaves a log
        // that recovers from the anchor (or an empty one that installs again).
        LogInstalling(logger, _shard, _replica, _log.NextIndex, firstIndex, trim.Gsn);
        SaveTrim(trim);
        var old = _log;
        var options = LogOptions(LogDirectory);
        options.StartIndex = firstIndex;
        _log = Task.Run(() =>
        {
            siloLogs.Close(old);
            foreach (var file in Directory.EnumerateFiles(options.Directory))
            {
                File.Delete(file);
            }

            return siloLogs.Open(options, journaled: false);
        }).GetAwaiter().GetResult();
        _flushRequestedUpTo = -1;
    }

    /// <summary>Deletes the whole segments below <paramref name="index"/> and moves the sparse index's start with the log's.</summary>
    private void DeleteTrimmedSegments(long index)
    {
        if (index <= _log.FirstIndex)
        {
            return;
        }

        var first = _log.TrimBefore(index);
        if (!_serving && Replicated)
        {
            return; // a follower keeps no slot numbering; it recovers it from the anchor when it leads
        }

        _baseSlot = SlotAtLogStart();
        _sparseIndex.RemoveAll(p => p.StorageIndex < first);
        _sparseIndex.Insert(0, (_baseSlot, first));
    }

    /// <summary>Refuses a read or subscription from <paramref name="fromSlot"/> if it lies below the trim point.</summary>
    private void EnsureNotTrimmed(long fromSlot)
    {
        if (_trim is { } trim && fromSlot < trim.Slot)
        {
            var gsn = _core.History.TryGsnOfSlot(_shard, fromSlot) ?? -1;
            throw new LogTrimmedException(gsn, trim.Gsn);
        }
    }

    /// <summary>The slot of the log's first entry: 0 for a log never trimmed, else counted back from the trim anchor.</summary>
    private long SlotAtLogStart()
    {
        var first = _log.FirstIndex;
        if (first == 0)
        {
            return 0;
        }

        if (_trim is not { } trim || trim.AnchorIndex < first)
        {
            throw new InvalidDataException(
                $"Shard {_shard}'s log starts at entry {first}, but its trim point ({TrimPath}) "
                + (_trim is null ? "is missing" : $"anchors entry {_trim.AnchorIndex}, before it") + ": the slots of its entries cannot be told.");
        }

        var slot = trim.AnchorSlot;
        for (var index = first; index < trim.AnchorIndex;)
        {
            var chunk = _log.ReadRange(index, (int)Math.Min(1024, trim.AnchorIndex - index));
            foreach (var e in chunk)
            {
                slot -= Decode(e).Count;
            }

            index += chunk.Count;
        }

        return slot;
    }

    private void SaveTrim(ShardTrim trim)
    {
        var floor = trim.DedupFloor ?? new Dictionary<Guid, long>();
        var bytes = new byte[40 + (24 * floor.Count)];
        var span = bytes.AsSpan();
        BinaryPrimitives.WriteInt32LittleEndian(span, TrimFloorMagic);
        BinaryPrimitives.WriteInt64LittleEndian(span[4..], trim.Gsn);
        BinaryPrimitives.WriteInt64LittleEndian(span[12..], trim.Slot);
        BinaryPrimitives.WriteInt64LittleEndian(span[20..], trim.AnchorIndex);
        BinaryPrimitives.WriteInt64LittleEndian(span[28..], trim.AnchorSlot);
        BinaryPrimitives.WriteInt32LittleEndian(span[36..], floor.Count);
        var at = 40;
        foreach (var (client, seq) in floor)
        {
            client.TryWriteBytes(span[at..]);
            BinaryPrimitives.WriteInt64LittleEndian(span[(at + 16)..], seq);
            at += 24;
        }

        DurableFile.Replace(TrimPath, bytes, _options.Fsync);
        _trim = trim;
    }

    private void LoadTrim()
    {
        var path = TrimPath;
        if (!File.Exists(path))
        {
            _trim = null;
            return;
        }

        var span = File.ReadAllBytes(path).AsSpan();
        var magic = span.Length >= 36 ? BinaryPrimitives.ReadInt32LittleEndian(span) : 0;
        var count = magic == TrimFloorMagic && span.Length >= 40 ? BinaryPrimitives.ReadInt32LittleEndian(span[36..]) : 0;
        if (!(magic == TrimMagic && span.Length == 36) && !(magic == TrimFloorMagic && count >= 0 && span.Length == 40 + (24L * count)))
        {
            throw new InvalidDataException($"{path} is not a shard trim point file.");
        }

        var floor = new Dictionary<Guid, long>(count);
        for (var at = 40; at < 40 + (24 * count); at += 24)
        {
            floor[new Guid(span.Slice(at, 16))] = BinaryPrimitives.ReadInt64LittleEndian(span[(at + 16)..]);
        }

        _trim = new ShardTrim(
            BinaryPrimitives.ReadInt64LittleEndian(span[4..]),
            BinaryPrimitives.ReadInt64LittleEndian(span[12..]),
            BinaryPrimitives.ReadInt64LittleEndian(span[20..]),
            BinaryPrimitives.ReadInt64LittleEndian(span[28..]),
            floor);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Shard {Shard} rejoined after the log was trimmed below GSN {Gsn}: trimmed itself below slot {Slot}")]
    private static partial void LogTrimCaughtUp(ILogger logger, int shard, long gsn, long slot);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Shard {Shard} could not learn the log's trim point after it rejoined; asking again")]
    private static partial void LogTrimCatchUpFailed(ILogger logger, Exception e, int shard);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Shard {Shard} dropped subscription {Subscription}: its next slot {Slot} lies below the trim point (GSN {Gsn})")]
    private static partial void LogSubscriberTrimmed(ILogger logger, int shard, Guid subscription, long slot, long gsn);

    [LoggerMessage(Level = LogLevel.Information, Message = "Shard {Shard} trimmed below GSN {Gsn} (slot {Slot}): its log starts at entry {FirstIndex} now, in {Segments} segments")]
    private static partial void LogTrimmed(ILogger logger, int shard, long gsn, long slot, long firstIndex, int segments);

    [LoggerMessage(Level = LogLevel.Information, Message = "Shard {Shard} replica {Replica} installs its leader's trimmed log: its own {End} entries end before the leader's first retained entry {FirstIndex} (trimmed below GSN {Gsn})")]
    private static partial void LogInstalling(ILogger logger, int shard, int replica, long end, long firstIndex, long gsn);
}
