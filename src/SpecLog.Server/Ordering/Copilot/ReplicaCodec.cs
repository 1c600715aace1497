using System.Buffers.Binary;
using System.Collections.Immutable;
using SpecLog.Copilot;
using SpecLog.FixAnte;

namespace SpecLog.Server.Ordering.Copilot;

/// <summary>
/// The wire and on-disk form of the Copilot core's replica messages and persisted records, with shard reports as the
/// command payload. Little-endian and fixed-width: int32 for logs, counts and ballot halves, int64 for slots,
/// dependencies and report fields, one byte for flags, statuses and tags.
/// </summary>
/// <remarks>
/// <para>A packet is: format version (1), message count (int32, at least 1), then each message as a one-byte tag and its
/// fields in declaration order. A record is: format version (1), a one-byte tag, then its fields.</para>
/// <para>An entry value is a kind byte (0 = commands, 1 = no-op); commands are followed by the dependency (int64), the
/// command count (int32) and each command: client (int32), sequence (int64), then the report's shard (int32), report
/// sequence, durable slots, real records, timestamp (int64 each), known windows (int32) and a flags byte
/// (bit 0 = fixed lag, bit 1 = waiting). An optional value or dependency is a presence byte (0 or 1) before it.</para>
/// <para>A checkpoint record holds the two heads and the two bases (int64 each), the high-water count (int32) and each
/// client's mark as client (int32) and sequence (int64), in increasing client order.</para>
/// <para>Decoding is strict: truncated input, an unknown version or tag, an out-of-range byte, a negative or impossible
/// count and trailing bytes all throw <see cref="InvalidDataException"/>.</para>
/// </remarks>
public static class ReplicaCodec
{
    /// <summary>Durable log entry kind of a persisted Copilot record.</summary>
    public const byte RecordKind = 20;

    /// <summary>The format version written first in every packet and record.</summary>
    private const byte Version = 1;

    /// <summary>Encoded size of one command: client, sequence and the eight report fields (the two flags share a byte).</summary>
    private const int CommandSize = 4 + 8 + 4 + 8 + 8 + 8 + 8 + 4 + 1;

    /// <summary>Encoded size of one conflict report: slot, committed flag, dependency.</summary>
    private const int ConflictSize = 8 + 1 + 8;

    /// <summary>Encoded size of one high-water mark of a checkpoint: client and sequence.</summary>
    private const int HighWaterSize = 4 + 8;

    /// <summary>The smallest encoded message (tag, log, slot), which bounds a plausible message count.</summary>
    private const int MinMessageSize = 1 + 4 + 8;

    private const byte FixedLagFlag = 1;
    private const byte WaitingFlag = 2;
    private const int ControlShift = 2; // bits 2-4: the report's ShardControl (0 for an ordinary report; 4, a trim, needs the third bit)
    private const byte ControlMask = 7 << ControlShift;

    private enum MessageTag : byte
    {
        FastAccept = 1,
        FastAcceptReply = 2,
        Accept = 3,
        AcceptReply = 4,
        Reject = 5,
        Commit = 6,
        CommitAck = 7,
        Prepare = 8,
        PrepareReply = 9,
        ViewPrepare = 10,
        ViewPrepareReply = 11,
        Heartbeat = 12,
        AnchorAck = 13,
        CatchUpRequest = 14,
    }

    private enum RecordTag : byte
    {
        ViewPromise = 1,
        Pilot = 2,
        KnownSlot = 3,
        Slot = 4,
        Checkpoint = 5,
        Rebuild = 6,
    }

    /// <summary>Encodes a packet of one or more messages into a single exactly sized array.</summary>
    /// <exception cref="ArgumentException">The list is empty, or holds null or a message type this codec does not know.</exception>
    public static byte[] EncodeMessages(IReadOnlyList<Message<ShardReport>> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (messages.Count == 0)
        {
            throw new ArgumentException("A packet holds at least one message.", nameof(messages));
        }

        var measure = Writer.Measuring();
        WritePacket(ref measure, messages);
        var bytes = new byte[measure.Position];
        var writer = Writer.Into(bytes);
        WritePacket(ref writer, messages);
        writer.CheckFilled();
        return bytes;
    }

    /// <summary>Decodes a packet written by <see cref="EncodeMessages"/>.</summary>
    /// <exception cref="InvalidDataException">The packet is malformed.</exception>
    public static Message<ShardReport>[] DecodeMessages(ReadOnlySpan<byte> packet)
    {
        var reader = new Reader(packet, "Copilot message packet");
        reader.ReadVersion();
        var count = reader.ReadInt32();
        if (count < 1 || count > reader.Remaining / MinMessageSize)
        {
            throw reader.Invalid($"message count {count} is impossible with {reader.Remaining} bytes left");
        }

        var messages = new Message<ShardReport>[count];
        for (var i = 0; i < count; i++)
        {
            messages[i] = ReadMessage(ref reader);
        }

        reader.CheckEnd();
        return messages;
    }

    /// <summary>Encodes one persisted record into a single exactly sized array.</summary>
    /// <exception cref="ArgumentException">The record is null or of a type this codec does not know.</exception>
    public static byte[] EncodeRecord(PersistRecord<ShardReport> record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var measure = Writer.Measuring();
        WriteRecord(ref measure, record);
        var bytes = new byte[measure.Position];
        var writer = Writer.Into(bytes);
        WriteRecord(ref writer, record);
        writer.CheckFilled();
        return bytes;
    }

    /// <summary>Decodes a record written by <see cref="EncodeRecord"/>.</summary>
    /// <exception cref="InvalidDataException">The record is malformed.</exception>
    public static PersistRecord<ShardReport> DecodeRecord(ReadOnlySpan<byte> bytes)
    {
        var reader = new Reader(bytes, "Copilot record");
        reader.ReadVersion();
        var tag = reader.ReadByte();
        PersistRecord<ShardReport> record = (RecordTag)tag switch
        {
            RecordTag.ViewPromise => new ViewPromiseRecord<ShardReport>(reader.ReadInt32(), reader.ReadBallot()),
            RecordTag.Pilot => new PilotRecord<ShardReport>(reader.ReadInt32(), reader.ReadBallot()),
            RecordTag.KnownSlot => new KnownSlotRecord<ShardReport>(reader.ReadInt32(), reader.ReadInt64()),
            RecordTag.Slot => new SlotRecord<ShardReport>(
                reader.ReadInt32(),
                reader.ReadInt64(),
                reader.ReadBallot(),
                reader.ReadStatus(),
                reader.ReadBallot(),
                reader.ReadOptionalValue(),
                reader.ReadBool(),
                reader.ReadInt64(),
                reader.ReadInt64(),
                reader.ReadBool()),
            RecordTag.Checkpoint => ReadCheckpoint(ref reader),
            RecordTag.Rebuild => new RebuildRecord<ShardReport>(
                new RebuildFloor(reader.ReadBallot(), reader.ReadBallot(), reader.ReadInt64(), reader.ReadInt64(), reader.ReadInt32())),
            _ => throw reader.Invalid($"unknown record tag {tag}"),
        };
        reader.CheckEnd();
        return record;
    }

    private static CheckpointRecord<ShardReport> ReadCheckpoint(ref Reader r)
    {
        var head0 = r.ReadInt64();
        var head1 = r.ReadInt64();
        var base0 = r.ReadInt64();
        var base1 = r.ReadInt64();
        var count = r.ReadCount(HighWaterSize, "high-water");
        var highWater = new Dictionary<int, long>(count);
        for (var i = 0; i < count; i++)
        {
            var client = r.ReadInt32();
            if (!highWater.TryAdd(client, r.ReadInt64()))
            {
                throw r.Invalid($"client {client} has two high-water marks");
            }
        }

        return new CheckpointRecord<ShardReport>(head0, head1, base0, base1, highWater);
    }

    private static void WritePacket(ref Writer w, IReadOnlyList<Message<ShardReport>> messages)
    {
        w.WriteByte(Version);
        w.WriteInt32(messages.Count);
        for (var i = 0; i < messages.Count; i++)
        {
            WriteMessage(ref w, messages[i]);
        }
    }

    private static void WriteMessage(ref Writer w, Message<ShardReport> message)
    {
        switch (message)
        {
            case FastAccept<ShardReport> m:
                w.WriteTag(MessageTag.FastAccept);
                w.WriteInt32(m.Log);
                w.WriteInt64(m.Slot);
                w.WriteBallot(m.Ballot);
                w.WriteValue(m.Value);
                break;
            case FastAcceptReply<ShardReport> m:
                w.WriteTag(MessageTag.FastAcceptReply);
                w.WriteInt32(m.Log);
                w.WriteInt64(m.Slot);
                w.WriteBallot(m.Ballot);
                w.WriteBool(m.Ok);
                w.WriteInt64(m.Dep);
                break;
            case Accept<ShardReport> m:
                w.WriteTag(MessageTag.Accept);
                w.WriteInt32(m.Log);
                w.WriteInt64(m.Slot);
                w.WriteBallot(m.Ballot);
                w.WriteValue(m.Value);
                break;
            case AcceptReply<ShardReport> m:
                w.WriteTag(MessageTag.AcceptReply);
                w.WriteInt32(m.Log);
                w.WriteInt64(m.Slot);
                w.WriteBallot(m.Ballot);
                break;
            case Reject<ShardReport> m:
                w.WriteTag(MessageTag.Reject);
                w.WriteInt32(m.Log);
                w.WriteInt64(m.Slot);
                w.WriteBallot(m.Ballot);
                w.WriteBallot(m.SlotPromise);
                w.WriteBallot(m.ViewPromise);
                break;
            case Commit<ShardReport> m:
                w.WriteTag(MessageTag.Commit);
                w.WriteInt32(m.Log);
                w.WriteInt64(m.Slot);
                w.WriteValue(m.Value);
                break;
            case CommitAck<ShardReport> m:
                w.WriteTag(MessageTag.CommitAck);
                w.WriteInt32(m.Log);
                w.WriteInt64(m.Slot);
                break;
            case Prepare<ShardReport> m:
                w.WriteTag(MessageTag.Prepare);
                w.WriteInt32(m.Log);
                w.WriteInt64(m.Slot);
                w.WriteBallot(m.Ballot);
                w.WriteBool(m.HintDep.HasValue);
                if (m.HintDep is { } hint)
                {
                    w.WriteInt64(hint);
                }

                break;
            case PrepareReply<ShardReport> m:
                ArgumentNullException.ThrowIfNull(m.State, "message.State");
                w.WriteTag(MessageTag.PrepareReply);
                w.WriteInt32(m.Log);
                w.WriteInt64(m.Slot);
                w.WriteBallot(m.Ballot);
                w.WriteStatus(m.State.Status);
                w.WriteBallot(m.State.AcceptedBallot);
                w.WriteOptionalValue(m.State.Value);
                w.WriteBool(m.State.FastOk);
                w.WriteInt64(m.ConflictsAbove);
                w.WriteBool(m.ConflictsComplete);
                var conflicts = m.Conflicts.IsDefault ? [] : m.Conflicts;
                w.WriteInt32(conflicts.Length);
                foreach (var c in conflicts)
                {
                    w.WriteInt64(c.Slot);
                    w.WriteBool(c.Committed);
                    w.WriteInt64(c.Dep);
                }

                break;
            case ViewPrepare<ShardReport> m:
                w.WriteTag(MessageTag.ViewPrepare);
                w.WriteInt32(m.Log);
                w.WriteBallot(m.Ballot);
                break;
            case ViewPrepareReply<ShardReport> m:
                w.WriteTag(MessageTag.ViewPrepareReply);
                w.WriteInt32(m.Log);
                w.WriteBallot(m.Ballot);
                w.WriteBool(m.Ok);
                w.WriteBallot(m.Promised);
                w.WriteInt64(m.MaxSlot);
                break;
            case Heartbeat<ShardReport> m:
                w.WriteTag(MessageTag.Heartbeat);
                w.WriteBallot(m.View0);
                w.WriteBallot(m.View1);
                w.WriteBool(m.Active0);
                w.WriteBool(m.Active1);
                w.WriteInt64(m.Committed0);
                w.WriteInt64(m.Committed1);
                w.WriteInt64(m.Known0);
                w.WriteInt64(m.Known1);
                break;
            case AnchorAck<ShardReport> m:
                w.WriteTag(MessageTag.AnchorAck);
                w.WriteInt32(m.Log);
                w.WriteBallot(m.Ballot);
                w.WriteInt64(m.Slot);
                break;
            case CatchUpRequest<ShardReport> m:
                w.WriteTag(MessageTag.CatchUpRequest);
                w.WriteInt32(m.Log);
                w.WriteInt64(m.FromSlot);
                break;
            case null:
                throw new ArgumentNullException(nameof(message), "A packet cannot hold a null message.");
            default:
                throw new ArgumentException($"Unknown Copilot message type {message.GetType().Name}.", nameof(message));
        }
    }

    private static Message<ShardReport> ReadMessage(ref Reader r)
    {
        var tag = r.ReadByte();
        return (MessageTag)tag switch
        {
            MessageTag.FastAccept => new FastAccept<ShardReport>(r.ReadInt32(), r.ReadInt64(), r.ReadBallot(), r.ReadValue()),
            MessageTag.FastAcceptReply => new FastAcceptReply<ShardReport>(r.ReadInt32(), r.ReadInt64(), r.ReadBallot(), r.ReadBool(), r.ReadInt64()),
            MessageTag.Accept => new Accept<ShardReport>(r.ReadInt32(), r.ReadInt64(), r.ReadBallot(), r.ReadValue()),
            MessageTag.AcceptReply => new AcceptReply<ShardReport>(r.ReadInt32(), r.ReadInt64(), r.ReadBallot()),
            MessageTag.Reject => new Reject<ShardReport>(r.ReadInt32(), r.ReadInt64(), r.ReadBallot(), r.ReadBallot(), r.ReadBallot()),
            MessageTag.Commit => new Commit<ShardReport>(r.ReadInt32(), r.ReadInt64(), r.ReadValue()),
            MessageTag.CommitAck => new CommitAck<ShardReport>(r.ReadInt32(), r.ReadInt64()),
            MessageTag.Prepare => new Prepare<ShardReport>(r.ReadInt32(), r.ReadInt64(), r.ReadBallot(), r.ReadBool() ? r.ReadInt64() : null),
            MessageTag.PrepareReply => ReadPrepareReply(ref r),
            MessageTag.ViewPrepare => new ViewPrepare<ShardReport>(r.ReadInt32(), r.ReadBallot()),
            MessageTag.ViewPrepareReply => new ViewPrepareReply<ShardReport>(r.ReadInt32(), r.ReadBallot(), r.ReadBool(), r.ReadBallot(), r.ReadInt64()),
            MessageTag.Heartbeat => new Heartbeat<ShardReport>(
                r.ReadBallot(),
                r.ReadBallot(),
                r.ReadBool(),
                r.ReadBool(),
                r.ReadInt64(),
                r.ReadInt64(),
                r.ReadInt64(),
                r.ReadInt64()),
            MessageTag.AnchorAck => new AnchorAck<ShardReport>(r.ReadInt32(), r.ReadBallot(), r.ReadInt64()),
            MessageTag.CatchUpRequest => new CatchUpRequest<ShardReport>(r.ReadInt32(), r.ReadInt64()),
            _ => throw r.Invalid($"unknown message tag {tag}"),
        };
    }

    private static PrepareReply<ShardReport> ReadPrepareReply(ref Reader r)
    {
        var log = r.ReadInt32();
        var slot = r.ReadInt64();
        var ballot = r.ReadBallot();
        var state = new SlotReport<ShardReport>(r.ReadStatus(), r.ReadBallot(), r.ReadOptionalValue(), r.ReadBool());
        var conflictsAbove = r.ReadInt64();
        var conflictsComplete = r.ReadBool();
        var count = r.ReadCount(ConflictSize, "conflict");
        var conflicts = ImmutableArray.CreateBuilder<ConflictReport>(count);
        for (var i = 0; i < count; i++)
        {
            conflicts.Add(new ConflictReport(r.ReadInt64(), r.ReadBool(), r.ReadInt64()));
        }

        return new PrepareReply<ShardReport>(log, slot, ballot, state, conflictsAbove, conflictsComplete, conflicts.MoveToImmutable());
    }

    private static void WriteRecord(ref Writer w, PersistRecord<ShardReport> record)
    {
        w.WriteByte(Version);
        switch (record)
        {
            case ViewPromiseRecord<ShardReport> r:
                w.WriteByte((byte)RecordTag.ViewPromise);
                w.WriteInt32(r.Log);
                w.WriteBallot(r.Promised);
                break;
            case PilotRecord<ShardReport> r:
                w.WriteByte((byte)RecordTag.Pilot);
                w.WriteInt32(r.Log);
                w.WriteBallot(r.Ballot);
                break;
            case KnownSlotRecord<ShardReport> r:
                w.WriteByte((byte)RecordTag.KnownSlot);
                w.WriteInt32(r.Log);
                w.WriteInt64(r.Slot);
                break;
            case SlotRecord<ShardReport> r:
                w.WriteByte((byte)RecordTag.Slot);
                w.WriteInt32(r.Log);
                w.WriteInt64(r.Slot);
                w.WriteBallot(r.Promised);
                w.WriteStatus(r.Status);
                w.WriteBallot(r.AcceptedBallot);
                w.WriteOptionalValue(r.Value);
                w.WriteBool(r.FastOk);
                w.WriteInt64(r.ReplyDep);
                w.WriteInt64(r.CompatDep);
                w.WriteBool(r.Guarded);
                break;
            case CheckpointRecord<ShardReport> r:
                ArgumentNullException.ThrowIfNull(r.HighWater, "record.HighWater");
                w.WriteByte((byte)RecordTag.Checkpoint);
                w.WriteInt64(r.Head0);
                w.WriteInt64(r.Head1);
                w.WriteInt64(r.Base0);
                w.WriteInt64(r.Base1);
                w.WriteInt32(r.HighWater.Count);
                foreach (var (client, seq) in r.HighWater.OrderBy(kv => kv.Key))
                {
                    w.WriteInt32(client);
                    w.WriteInt64(seq);
                }

                break;
            case RebuildRecord<ShardReport> r:
                ArgumentNullException.ThrowIfNull(r.Floor, "record.Floor");
                w.WriteByte((byte)RecordTag.Rebuild);
                w.WriteBallot(r.Floor.View0);
                w.WriteBallot(r.Floor.View1);
                w.WriteInt64(r.Floor.Known0);
                w.WriteInt64(r.Floor.Known1);
                w.WriteInt32(r.Floor.MaxRound);
                break;
            default:
                throw new ArgumentException($"Unknown Copilot record type {record.GetType().Name}.", nameof(record));
        }
    }

    /// <summary>Writes fields at increasing offsets; in measuring mode it only advances, so one layout code sizes and fills.</summary>
    private ref struct Writer
    {
        private readonly Span<byte> _buffer;
        private readonly bool _measureOnly;

        private Writer(Span<byte> buffer, bool measureOnly)
        {
            _buffer = buffer;
            _measureOnly = measureOnly;
        }

        /// <summary>A writer that only counts the bytes a layout needs.</summary>
        public static Writer Measuring() => new(default, measureOnly: true);

        /// <summary>A writer that fills <paramref name="buffer"/>, which must be exactly as long as measured.</summary>
        public static Writer Into(Span<byte> buffer) => new(buffer, measureOnly: false);

        public int Position { get; private set; }

        public void WriteByte(byte value)
        {
            if (!_measureOnly)
            {
                _buffer[Position] = value;
            }

            Advance(1);
        }

        public void WriteTag(MessageTag tag) => WriteByte((byte)tag);

        public void WriteBool(bool value) => WriteByte(value ? (byte)1 : (byte)0);

        public void WriteInt32(int value)
        {
            if (!_measureOnly)
            {
                BinaryPrimitives.WriteInt32LittleEndian(_buffer[Position..], value);
            }

            Advance(4);
        }

        public void WriteInt64(long value)
        {
            if (!_measureOnly)
            {
                BinaryPrimitives.WriteInt64LittleEndian(_buffer[Position..], value);
            }

            Advance(8);
        }

        public void WriteBallot(Ballot ballot)
        {
            WriteInt32(ballot.Round);
            WriteInt32(ballot.Replica);
        }

        public void WriteStatus(SlotStatus status)
        {
            if (status is < SlotStatus.Empty or > SlotStatus.Committed)
            {
                throw new ArgumentException($"Unknown slot status {(int)status}.", nameof(status));
            }

            WriteByte((byte)status);
        }

        public void WriteOptionalValue(EntryValue<ShardReport>? value)
        {
            WriteBool(value is not null);
            if (value is not null)
            {
                WriteValue(value);
            }
        }

        public void WriteValue(EntryValue<ShardReport> value)
        {
            ArgumentNullException.ThrowIfNull(value);
            WriteBool(value.IsNoOp);
            if (value.IsNoOp)
            {
                return;
            }

            WriteInt64(value.Dep);
            WriteInt32(value.Commands.Length);
            foreach (var command in value.Commands)
            {
                WriteInt32(command.Id.Client);
                WriteInt64(command.Id.Seq);
                var report = command.Payload;
                WriteInt32(report.Shard);
                WriteInt64(report.ReportSeq);
                WriteInt64(report.DurableSlots);
                WriteInt64(report.RealRecords);
                WriteInt64(report.TimestampMicros);
                WriteInt32(report.KnownWindows);
                WriteByte((byte)((report.FixedLag ? FixedLagFlag : 0) | (report.Waiting ? WaitingFlag : 0) | ((int)report.Control << ControlShift)));
            }
        }

        /// <summary>Moves past written bytes; a layout beyond 2 GiB fails here rather than wrapping around.</summary>
        private void Advance(int count) => Position = checked(Position + count);

        public readonly void CheckFilled()
        {
            if (Position != _buffer.Length)
            {
                throw new InvalidOperationException($"Encoder wrote {Position} bytes into a buffer sized {_buffer.Length}.");
            }
        }
    }

    /// <summary>Reads fields at increasing offsets, turning every bounds or range problem into <see cref="InvalidDataException"/>.</summary>
    private ref struct Reader(ReadOnlySpan<byte> span, string what)
    {
        private readonly ReadOnlySpan<byte> _span = span;
        private int _position;

        public readonly int Remaining => _span.Length - _position;

        public readonly InvalidDataException Invalid(string problem) =>
            new($"Malformed {what} at offset {_position} of {_span.Length}: {problem}.");

        public void ReadVersion()
        {
            var version = ReadByte();
            if (version != Version)
            {
                throw Invalid($"unsupported format version {version} (expected {Version})");
            }
        }

        public byte ReadByte() => Take(1)[0];

        public int ReadInt32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));

        public long ReadInt64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

        public bool ReadBool()
        {
            var b = ReadByte();
            return b switch
            {
                0 => false,
                1 => true,
                _ => throw Invalid($"flag byte {b} is neither 0 nor 1"),
            };
        }

        public Ballot ReadBallot() => new(ReadInt32(), ReadInt32());

        public SlotStatus ReadStatus()
        {
            var b = ReadByte();
            return b <= (byte)SlotStatus.Committed ? (SlotStatus)b : throw Invalid($"unknown slot status {b}");
        }

        /// <summary>Reads a non-negative count of elements of at least <paramref name="elementSize"/> bytes that fit in what is left.</summary>
        public int ReadCount(int elementSize, string element)
        {
            var count = ReadInt32();
            if (count < 0 || count > Remaining / elementSize)
            {
                throw Invalid($"{element} count {count} is impossible with {Remaining} bytes left");
            }

            return count;
        }

        public EntryValue<ShardReport>? ReadOptionalValue() => ReadBool() ? ReadValue() : null;

        public EntryValue<ShardReport> ReadValue()
        {
            if (ReadBool())
            {
                return EntryValue<ShardReport>.NoOp;
            }

            var dep = ReadInt64();
            var count = ReadCount(CommandSize, "command");
            var commands = ImmutableArray.CreateBuilder<Command<ShardReport>>(count);
            for (var i = 0; i < count; i++)
            {
                var id = new CommandId(ReadInt32(), ReadInt64());
                var shard = ReadInt32();
                var reportSeq = ReadInt64();
                var durableSlots = ReadInt64();
                var realRecords = ReadInt64();
                var timestamp = ReadInt64();
                var knownWindows = ReadInt32();
                var flags = ReadByte();
                var control = (ShardControl)((flags & ControlMask) >> ControlShift);
                if ((flags & ~(FixedLagFlag | WaitingFlag | ControlMask)) != 0 || !Enum.IsDefined(control))
                {
                    throw Invalid($"unknown report flags 0x{flags:X2}");
                }

                var report = new ShardReport(
                    shard,
                    reportSeq,
                    durableSlots,
                    realRecords,
                    timestamp,
                    knownWindows,
                    (flags & FixedLagFlag) != 0,
                    (flags & WaitingFlag) != 0,
                    control);
                commands.Add(new Command<ShardReport>(id, report));
            }

            return new EntryValue<ShardReport>(false, dep, commands.MoveToImmutable());
        }

        public readonly void CheckEnd()
        {
            if (Remaining != 0)
            {
                throw Invalid($"{Remaining} trailing bytes");
            }
        }

        private ReadOnlySpan<byte> Take(int count)
        {
            if (Remaining < count)
            {
                throw Invalid($"truncated, {count} bytes needed but {Remaining} left");
            }

            var slice = _span.Slice(_position, count);
            _position += count;
            return slice;
        }
    }
}
