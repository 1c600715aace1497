using System.Buffers.Binary;
using Microsoft.Extensions.Logging;
using SpecLog.Copilot;
using SpecLog.FixAnte;
using SpecLog.Server.Ordering;
using SpecLog.Server.Ordering.Copilot;

namespace SpecLog.Server.Grains;

/// <summary>
/// Recovery and checkpoints of an ordering replica. A checkpoint is one log entry holding everything the replica must
/// not forget — its incarnation, the peers' incarnations, the Copilot core's checkpoint (acceptor state of the entries
/// still held, executed heads, deduplication) and the sequencer state at exactly those heads — so the log's segments
/// below it are deleted once it is durable, and a restart replays the newest checkpoint and the records after it only.
/// The core compacts (forgets) only entries every replica has committed, so no peer ever needs them from here.
/// </summary>
internal sealed partial class SequencerReplicaGrain
{
    private const byte CheckpointKind = 23; // a whole checkpoint in one entry (written before checkpoints were split)
    private const byte CheckpointPartKind = 24;
    private const int CheckpointMagic = 0x31435253; // "SRC1"

    /// <summary>
    /// Bytes of checkpoint per log entry: a checkpoint grows with the entries not yet compacted (while a replica is
    /// down or being rebuilt nothing is), far past what one log entry may hold, so it is written as consecutive parts.
    /// </summary>
    private const int CheckpointPartBytes = 1 << 20;

    private long _bytesSinceCheckpoint;
    private long _lastCheckpointBytes;
    private long _checkpoints;
    private bool _checkpointing;
    private SequencerSnapshot? _recoveredSnapshot;

    /// <summary>Compacts the core and writes a checkpoint when enough was appended since the last (see <see cref="ReplicationOptions.CheckpointMinBytes"/>).</summary>
    private async Task MaybeCheckpointAsync()
    {
        _replica.Compact();
        if (_checkpointing || _deactivating || _bytesSinceCheckpoint < Math.Max(_options.Replication.CheckpointMinBytes, _lastCheckpointBytes))
        {
            return;
        }

        _checkpointing = true;
        try
        {
            // Synchronous from here to the append: the core's heads and the sequencer state are at the same point.
            var checkpoint = _replica.TakeCheckpoint();
            var bytes = EncodeCheckpoint(checkpoint, _state.Snapshot());
            var index = AppendCheckpoint(bytes);
            _bytesSinceCheckpoint = 0;
            _lastCheckpointBytes = bytes.Length;
            await _log.FlushAsync();
            var first = _log.TrimBefore(index);
            _checkpoints++;
            LogCheckpoint(logger, _id, index, bytes.Length, checkpoint.Records.Count, first, checkpoint.Header.Base0, checkpoint.Header.Base1);
        }
        catch (Exception e) when (e is not OutOfMemoryException && !_deactivating)
        {
            // Not retried on every tick (each try encodes the whole state): after as many bytes again.
            _bytesSinceCheckpoint = 0;
            LogCheckpointFailed(logger, e, _id);
        }
        finally
        {
            _checkpointing = false;
        }
    }

    /// <summary>
    /// Appends <paramref name="checkpoint"/> (not yet flushed) as consecutive parts of at most
    /// <see cref="CheckpointPartBytes"/>, each headed by its number and the count; returns the first part's index.
    /// Recovery takes a checkpoint only when all its parts are there (a crash may tear the last one off).
    /// </summary>
    private long AppendCheckpoint(byte[] checkpoint)
    {
        var first = _log.NextIndex;
        var parts = Math.Max(1, (checkpoint.Length + CheckpointPartBytes - 1) / CheckpointPartBytes);
        for (var part = 0; part < parts; part++)
        {
            var offset = part * CheckpointPartBytes;
            var length = Math.Min(CheckpointPartBytes, checkpoint.Length - offset);
            var entry = new byte[8 + length];
            BinaryPrimitives.WriteInt32LittleEndian(entry, part);
            BinaryPrimitives.WriteInt32LittleEndian(entry.AsSpan(4), parts);
            checkpoint.AsSpan(offset, length).CopyTo(entry.AsSpan(8));
            _log.Append(CheckpointPartKind, entry);
        }

        return first;
    }

    private byte[] EncodeCheckpoint(ReplicaCheckpoint<ShardReport> checkpoint, SequencerSnapshot snapshot) =>
        EncodeCheckpoint(_epoch, _peerEpochs, snapshot, checkpoint.Records);

    /// <summary>A checkpoint entry: magic, incarnation, replica set, the peers' incarnations, the sequencer state, the core's records.</summary>
    private byte[] EncodeCheckpoint(long epoch, long[] peerEpochs, SequencerSnapshot snapshot, IReadOnlyList<PersistRecord<ShardReport>> records)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream))
        {
            writer.Write(CheckpointMagic);
            writer.Write(epoch);
            writer.Write(_copilot.ReplicaCount);
            writer.Write((byte)_copilot.Mode);
            foreach (var peer in peerEpochs)
            {
                writer.Write(peer);
            }

            SequencerSnapshotCodec.Write(writer, snapshot);
            writer.Write(records.Count);
            foreach (var record in records)
            {
                var encoded = ReplicaCodec.EncodeRecord(record);
                writer.Write(encoded.Length);
                writer.Write(encoded);
            }
        }

        return stream.ToArray();
    }

    /// <summary>Reads a checkpoint entry: restores the peers' incarnations and returns the records it stands for.</summary>
    private List<PersistRecord<ShardReport>> DecodeCheckpoint(byte[] bytes, ref long lastEpoch)
    {
        var (epoch, peerEpochs, snapshot, records) = ReadCheckpoint(bytes);
        lastEpoch = Math.Max(lastEpoch, epoch);
        for (var peer = 0; peer < _peerEpochs.Length; peer++)
        {
            _peerEpochs[peer] = Math.Max(_peerEpochs[peer], peerEpochs[peer]);
        }

        _recoveredSnapshot = snapshot;
        _lastCheckpointBytes = bytes.Length;
        return records;
    }

    private (long Epoch, long[] PeerEpochs, SequencerSnapshot Snapshot, List<PersistRecord<ShardReport>> Records) ReadCheckpoint(byte[] bytes)
    {
        using var reader = new BinaryReader(new MemoryStream(bytes));
        if (reader.ReadInt32() != CheckpointMagic)
        {
            throw new InvalidDataException($"Replica {_id}: a checkpoint has a bad magic number.");
        }

        var epoch = reader.ReadInt64();
        CheckReplicaSet(reader.ReadInt32(), (ReplicationMode)reader.ReadByte());
        var peerEpochs = new long[_copilot.ReplicaCount];
        for (var peer = 0; peer < peerEpochs.Length; peer++)
        {
            peerEpochs[peer] = reader.ReadInt64();
        }

        var snapshot = SequencerSnapshotCodec.Read(reader);
        var count = reader.ReadInt32();
        if (count is < 1 or > 1 << 26)
        {
            throw new InvalidDataException($"Replica {_id}: a checkpoint claims {count} records.");
        }

        var records = new List<PersistRecord<ShardReport>>(count);
        for (var i = 0; i < count; i++)
        {
            records.Add(ReplicaCodec.DecodeRecord(reader.ReadBytes(reader.ReadInt32())));
        }

        return (epoch, peerEpochs, snapshot, records);
    }

    private void CheckReplicaSet(int n, ReplicationMode mode)
    {
        if (n != _copilot.ReplicaCount || mode != _copilot.Mode)
        {
            throw new InvalidOperationException(
                $"Replica {_id}'s data was written with {n} replicas in {mode} mode, but SpecLog:Replication now says {_copilot.ReplicaCount} replicas in {_copilot.Mode} mode. Changing the replica set of a log with data is not supported.");
        }
    }

    private List<PersistRecord<ShardReport>> ReadLog(out long lastEpoch)
    {
        lastEpoch = 0;
        var records = new List<PersistRecord<ShardReport>>();
        var parts = new CheckpointParts(_id);
        for (var i = _log.FirstIndex; i < _log.NextIndex;)
        {
            var batch = _log.ReadRange(i, 1024);
            if (batch.Count == 0)
            {
                throw new InvalidDataException($"Replica {_id}: log entry {i} could not be read.");
            }

            foreach (var e in batch)
            {
                var span = e.Payload.Span;
                if (e.Kind != CheckpointPartKind)
                {
                    parts.OtherEntry(); // ends a torn checkpoint (the replica crashed while writing it): what precedes it stands
                }

                switch (e.Kind)
                {
                    case ReplicaCodec.RecordKind:
                        records.Add(ReplicaCodec.DecodeRecord(span));
                        _bytesSinceCheckpoint += span.Length;
                        break;
                    case CheckpointKind:
                        // Everything before the newest checkpoint is in it (its segments may not be deleted yet).
                        records = DecodeCheckpoint(span.ToArray(), ref lastEpoch);
                        _bytesSinceCheckpoint = 0;
                        break;
                    case CheckpointPartKind:
                        var part = BinaryPrimitives.ReadInt32LittleEndian(span);
                        var count = BinaryPrimitives.ReadInt32LittleEndian(span[4..]);
                        if (parts.Add(e.Index, part, count, span[8..]) is { } whole)
                        {
                            records = DecodeCheckpoint(whole, ref lastEpoch);
                            _bytesSinceCheckpoint = 0;
                        }

                        break;
                    case IncarnationKind:
                        lastEpoch = Math.Max(lastEpoch, BinaryPrimitives.ReadInt64LittleEndian(span));
                        CheckReplicaSet(BinaryPrimitives.ReadInt32LittleEndian(span[8..]), (ReplicationMode)span[12]);
                        break;
                    case PeerEpochKind:
                        var peer = BinaryPrimitives.ReadInt32LittleEndian(span);
                        if ((uint)peer < (uint)_peerEpochs.Length)
                        {
                            _peerEpochs[peer] = Math.Max(_peerEpochs[peer], BinaryPrimitives.ReadInt64LittleEndian(span[4..]));
                        }

                        break;
                    default:
                        throw new InvalidDataException($"Replica {_id}: unknown log entry kind {e.Kind} at {e.Index}.");
                }
            }

            i += batch.Count;
        }

        if (parts.SkippedAtStart > 0)
        {
            LogOrphanParts(logger, _id, parts.SkippedAtStart, _log.FirstIndex);
        }

        return records;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Sequencer replica {Replica}: skipped {Parts} part(s) of an older checkpoint at the start of its log (entry {FirstEntry}); its first parts were deleted below the newer checkpoint that follows")]
    private static partial void LogOrphanParts(ILogger logger, int replica, int parts, long firstEntry);

    [LoggerMessage(Level = LogLevel.Error, Message = "Sequencer replica {Replica}: writing a checkpoint failed; trying again after as many bytes more")]
    private static partial void LogCheckpointFailed(ILogger logger, Exception e, int replica);

    [LoggerMessage(Level = LogLevel.Information, Message = "Sequencer replica {Replica}: checkpoint at log entry {Index} ({Bytes} bytes, {Records} acceptor records); the log keeps entries from {FirstEntry}; compacted below entries {Base0} and {Base1}")]
    private static partial void LogCheckpoint(ILogger logger, int replica, long index, int bytes, int records, long firstEntry, long base0, long base1);
}
