using Microsoft.Extensions.Logging;

namespace SpecLog.Consumer;

/// <summary>Taking partitions (from their checkpoints), saving checkpoints, and handing partitions back.</summary>
public sealed partial class SpeculativeConsumer<TState, TOutput>
{
    private Task? _saving;
    private DateTime _nextSave = DateTime.MinValue;

    /// <summary>Makes the partitions held match <paramref name="target"/>: final checkpoints of those given up first, then those taken from theirs.</summary>
    private async Task ReconcileAsync(int[] target, CancellationToken cancellationToken)
    {
        var gone = _partitions.Keys.Where(k => !target.Contains(k)).ToArray();
        if (gone.Length > 0)
        {
            await FinishSavingAsync();
            foreach (var shard in gone)
            {
                var p = _partitions[shard];
                await SaveAsync(p, CancellationToken.None);
                _partitions.Remove(shard);
                LogReleasedPartition(_logger, _name, MemberId, p.Name, p.Engine.ReleasedThrough);
            }
        }

        if (_options.Checkpoints && _sink is IResumableOutputSink<TOutput> resumable && target.Any(k => !_partitions.ContainsKey(k)))
        {
            // Asked again whenever partitions are taken: in a group, a shard taken from a member that died may have had
            // outputs released into the sink after that member's last checkpoint.
            _sinkHas = await resumable.GetLastReleasedAsync(cancellationToken);
        }

        foreach (var shard in target.Where(k => !_partitions.ContainsKey(k)))
        {
            var partition = await TakeAsync(shard, cancellationToken);
            _partitions[shard] = partition;
        }

        Volatile.Write(ref _held, [.. _partitions.Keys.Order()]);
    }

    /// <summary>Takes a partition: fences earlier owners and starts from its checkpoint (or from the start).</summary>
    private async Task<Partition> TakeAsync(int shard, CancellationToken cancellationToken)
    {
        var name = Partition.NameOf(shard);
        long fence = 0;
        ConsumerCheckpoint? checkpoint = null;
        if (_options.Checkpoints)
        {
            var lease = await Checkpoint(name).AcquireAsync(MemberId).WaitAsync(cancellationToken);
            fence = lease.Fence;
            checkpoint = lease.Checkpoint;
        }

        TState state;
        long position;
        if (checkpoint is null)
        {
            state = _newState();
            position = _options.StartGsn;
        }
        else if (checkpoint.State is { } bytes)
        {
            state = _codec.Deserialize(bytes);
            position = checkpoint.Position;
        }
        else
        {
            // Checkpoints without state: a new state from the release point on.
            state = _newState();
            position = checkpoint.ReleasedThrough;
        }

        var engine = new SpeculationEngine<TState, TOutput>(state, position, _apply, _codec.Copy, _options.SnapshotEvery, checkpoint?.ReleasedThrough ?? -1, gsnOrdered: shard < 0);
        LogTookPartition(_logger, _name, MemberId, name, position, engine.ReleasedThrough, fence);
        return new Partition(shard, engine, fence) { Saved = checkpoint is null ? (-1, -1) : (checkpoint.Position, checkpoint.ReleasedThrough) };
    }

    private IConsumerCheckpointGrain Checkpoint(string partition) =>
        _grains.GetGrain<IConsumerCheckpointGrain>(ConsumerCheckpoints.Key(_name, partition));

    /// <summary>Starts saving the partitions that moved since their last save, at most one round in flight, every interval.</summary>
    private async ValueTask CheckpointIfDueAsync(CancellationToken cancellationToken)
    {
        if (!_options.Checkpoints)
        {
            return;
        }

        if (_saving is { IsCompleted: true } done)
        {
            _saving = null;
            try
            {
                await done; // a fenced save's error stops the consumer (or, in a group, makes it take its assignment again)
            }
            catch (Exception e) when (e is TimeoutException or OrleansException)
            {
                // The checkpoint grain's silo died or did not answer: the consumer goes on, and the next save, an
                // interval later, writes everything since the last one that succeeded.
                Statistics.AddFailedCheckpoint();
                LogSaveFailed(_logger, e, _name);
            }
        }

        if (_saving is not null || DateTime.UtcNow < _nextSave)
        {
            return;
        }

        _nextSave = DateTime.UtcNow + _options.CheckpointInterval;
        var due = new List<(Partition P, Pending C)>();
        foreach (var p in _partitions.Values)
        {
            if (Prepare(p) is { } c)
            {
                due.Add((p, c));
            }
        }

        if (due.Count > 0)
        {
            _saving = SaveAllAsync(due, CancellationToken.None); // a save in flight completes also when the consumer stops
        }
    }

    private async Task SaveAllAsync(List<(Partition P, Pending C)> due, CancellationToken cancellationToken)
    {
        // Off the consumer's loop: the snapshot states captured are never changed (a rollback copies them again).
        await Task.Yield();
        foreach (var (p, c) in due)
        {
            await WriteAsync(p, Serialized(c), cancellationToken);
        }
    }

    /// <summary>What a save of <paramref name="p"/> would hold now (its state still unserialized), or null if nothing moved.</summary>
    private Pending? Prepare(Partition p)
    {
        var (position, state) = p.Engine.BaseSnapshot;
        var released = p.Engine.ReleasedThrough;
        if (!_options.CheckpointState)
        {
            position = released;
        }

        if (position == p.Saved.Position && released == p.Saved.Released)
        {
            return null;
        }

        return new Pending(position, released, state);
    }

    private ConsumerCheckpoint Serialized(Pending c) =>
        new(c.Position, c.Released, _options.CheckpointState ? _codec.Serialize(c.Snapshot) : null, DateTime.UtcNow);

    private async Task WriteAsync(Partition p, ConsumerCheckpoint c, CancellationToken cancellationToken)
    {
        await Checkpoint(p.Name).SaveAsync(p.Fence, c).WaitAsync(cancellationToken);
        p.Saved = (c.Position, c.ReleasedThrough);
        Statistics.AddCheckpoint();
    }

    /// <summary>Saves <paramref name="p"/> now if it moved (a final save before giving it up or stopping).</summary>
    private async Task SaveAsync(Partition p, CancellationToken cancellationToken)
    {
        if (_options.Checkpoints && Prepare(p) is { } c)
        {
            await WriteAsync(p, Serialized(c), cancellationToken);
        }
    }

    private async Task FinishSavingAsync()
    {
        if (_saving is { } saving)
        {
            _saving = null;
            await saving;
        }
    }

    /// <summary>On the way out: a last checkpoint of every partition, then leave the group.</summary>
    private async Task StopAsync(GroupMembership? membership)
    {
        try
        {
            await FinishSavingAsync();
            foreach (var p in _partitions.Values)
            {
                await SaveAsync(p, CancellationToken.None);
            }
        }
        catch (Exception e) when (e is CheckpointFencedException or TimeoutException or OrleansException)
        {
            LogLastSaveFailed(_logger, e, _name);
        }
        finally
        {
            Volatile.Write(ref _held, []);
            if (membership is not null)
            {
                await membership.LeaveAsync();
            }
        }
    }

    /// <summary>A checkpoint to save, its state still the snapshot object (serialized only when written).</summary>
    private readonly record struct Pending(long Position, long Released, TState Snapshot);

    [LoggerMessage(EventId = 7002, Level = LogLevel.Information, Message = "Consumer {Consumer} ({Member}) took partition {Partition} at GSN {Position} (outputs released below {Released}; fence {Fence})")]
    private static partial void LogTookPartition(ILogger logger, string consumer, string member, string partition, long position, long released, long fence);

    [LoggerMessage(EventId = 7003, Level = LogLevel.Information, Message = "Consumer {Consumer} ({Member}) gave up partition {Partition} (outputs released below {Released})")]
    private static partial void LogReleasedPartition(ILogger logger, string consumer, string member, string partition, long released);

    [LoggerMessage(EventId = 7008, Level = LogLevel.Warning, Message = "Consumer {Consumer}: a checkpoint failed; the next one follows an interval later")]
    private static partial void LogSaveFailed(ILogger logger, Exception e, string consumer);

    [LoggerMessage(EventId = 7004, Level = LogLevel.Warning, Message = "Consumer {Consumer}: the last checkpoint on stopping failed")]
    private static partial void LogLastSaveFailed(ILogger logger, Exception e, string consumer);
}
