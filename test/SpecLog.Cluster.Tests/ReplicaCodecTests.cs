using System.Buffers.Binary;
using System.Collections.Immutable;
using CsCheck;
using SpecLog.Copilot;
using SpecLog.FixAnte;
using SpecLog.Server.Ordering.Copilot;

namespace SpecLog.Cluster.Tests;

/// <summary>Round trips and malformed-input handling of the Copilot replica message and record codec.</summary>
public sealed class ReplicaCodecTests
{
    private const int Iterations = 300;

    // ---- generators -------------------------------------------------------------------------------------------------

    private static readonly Gen<long> AnyLong = Gen.OneOf<long>(
        Gen.Long,
        Gen.Long[-1, 1000],
        Gen.OneOf(long.MinValue, long.MaxValue, long.MinValue + 1, long.MaxValue - 1, -1L, 0L));

    private static readonly Gen<int> AnyInt = Gen.OneOf<int>(
        Gen.Int,
        Gen.Int[-1, 5],
        Gen.OneOf(int.MinValue, int.MaxValue, -1, 0));

    private static readonly Gen<long?> OptionalLong = Gen.Frequency<long?>(
        (1, Gen.Const((long?)null)),
        (3, AnyLong.Select(l => (long?)l)));

    private static readonly Gen<Ballot> AnyBallot = Gen.Frequency<Ballot>(
        (1, Gen.Const(Ballot.None)),
        (4, Gen.Select(AnyInt, AnyInt, (round, replica) => new Ballot(round, replica))));

    private static readonly Gen<SlotStatus> AnyStatus = Gen.Int[0, 3].Select(s => (SlotStatus)s);

    private static readonly Gen<ShardReport> AnyReport = Gen.Select(
        Gen.Select(AnyInt, AnyLong, AnyLong, AnyLong, AnyLong, AnyInt, Gen.Bool, Gen.Bool),
        Gen.Int[0, 4].Select(c => (ShardControl)c),
        (r, control) => new ShardReport(r.Item1, r.Item2, r.Item3, r.Item4, r.Item5, r.Item6, r.Item7, r.Item8, control));

    private static readonly Gen<Command<ShardReport>> AnyCommand = Gen.Select(
        AnyInt, AnyLong, AnyReport, (client, seq, report) => new Command<ShardReport>(new CommandId(client, seq), report));

    /// <summary>No-ops, empty batches, single commands and multi-command batches.</summary>
    private static readonly Gen<EntryValue<ShardReport>> AnyValue = Gen.Frequency<EntryValue<ShardReport>>(
        (1, Gen.Const(EntryValue<ShardReport>.NoOp)),
        (1, AnyLong.Select(dep => new EntryValue<ShardReport>(false, dep, []))),
        (4, Gen.Select(AnyLong, AnyCommand.Array[1, 6], (dep, commands) => new EntryValue<ShardReport>(false, dep, [.. commands]))));

    private static readonly Gen<EntryValue<ShardReport>?> OptionalValue = Gen.Frequency<EntryValue<ShardReport>?>(
        (1, Gen.Const((EntryValue<ShardReport>?)null)),
        (3, AnyValue.Select(v => (EntryValue<ShardReport>?)v)));

    private static readonly Gen<ImmutableArray<ConflictReport>> AnyConflicts = Gen.Select(AnyLong, Gen.Bool, AnyLong, (slot, committed, dep) => new ConflictReport(slot, committed, dep))
        .Array[0, 5]
        .Select(cs => cs.ToImmutableArray());

    private static readonly Dictionary<string, Gen<Message<ShardReport>>> MessageGens = new()
    {
        ["FastAccept"] = Gen.Select(AnyInt, AnyLong, AnyBallot, AnyValue, (log, slot, b, v) => (Message<ShardReport>)new FastAccept<ShardReport>(log, slot, b, v)),
        ["FastAcceptReply"] = Gen.Select(AnyInt, AnyLong, AnyBallot, Gen.Bool, AnyLong, (log, slot, b, ok, dep) => (Message<ShardReport>)new FastAcceptReply<ShardReport>(log, slot, b, ok, dep)),
        ["Accept"] = Gen.Select(AnyInt, AnyLong, AnyBallot, AnyValue, (log, slot, b, v) => (Message<ShardReport>)new Accept<ShardReport>(log, slot, b, v)),
        ["AcceptReply"] = Gen.Select(AnyInt, AnyLong, AnyBallot, (log, slot, b) => (Message<ShardReport>)new AcceptReply<ShardReport>(log, slot, b)),
        ["Reject"] = Gen.Select(AnyInt, AnyLong, AnyBallot, AnyBallot, AnyBallot, (log, slot, b, sp, vp) => (Message<ShardReport>)new Reject<ShardReport>(log, slot, b, sp, vp)),
        ["Commit"] = Gen.Select(AnyInt, AnyLong, AnyValue, (log, slot, v) => (Message<ShardReport>)new Commit<ShardReport>(log, slot, v)),
        ["CommitAck"] = Gen.Select(AnyInt, AnyLong, (log, slot) => (Message<ShardReport>)new CommitAck<ShardReport>(log, slot)),
        ["Prepare"] = Gen.Select(AnyInt, AnyLong, AnyBallot, OptionalLong, (log, slot, b, hint) => (Message<ShardReport>)new Prepare<ShardReport>(log, slot, b, hint)),
        ["PrepareReply"] = Gen.Select(
            AnyInt, AnyLong, AnyBallot, AnyStatus, AnyBallot, OptionalValue, Gen.Bool, AnyLong, Gen.Bool, AnyConflicts,
            (log, slot, b, status, accepted, value, fastOk, above, complete, conflicts) => (Message<ShardReport>)new PrepareReply<ShardReport>(
                log, slot, b, new SlotReport<ShardReport>(status, accepted, value, fastOk), above, complete, conflicts)),
        ["ViewPrepare"] = Gen.Select(AnyInt, AnyBallot, (log, b) => (Message<ShardReport>)new ViewPrepare<ShardReport>(log, b)),
        ["ViewPrepareReply"] = Gen.Select(AnyInt, AnyBallot, Gen.Bool, AnyBallot, AnyLong, (log, b, ok, promised, max) => (Message<ShardReport>)new ViewPrepareReply<ShardReport>(log, b, ok, promised, max)),
        ["Heartbeat"] = Gen.Select(
            AnyBallot, AnyBallot, Gen.Bool, Gen.Bool, AnyLong, AnyLong, AnyLong, AnyLong,
            (v0, v1, a0, a1, c0, c1, k0, k1) => (Message<ShardReport>)new Heartbeat<ShardReport>(v0, v1, a0, a1, c0, c1, k0, k1)),
        ["AnchorAck"] = Gen.Select(AnyInt, AnyBallot, AnyLong, (log, b, slot) => (Message<ShardReport>)new AnchorAck<ShardReport>(log, b, slot)),
        ["CatchUpRequest"] = Gen.Select(AnyInt, AnyLong, (log, from) => (Message<ShardReport>)new CatchUpRequest<ShardReport>(log, from)),
    };

    private static readonly Dictionary<string, Gen<PersistRecord<ShardReport>>> RecordGens = new()
    {
        ["ViewPromiseRecord"] = Gen.Select(AnyInt, AnyBallot, (log, b) => (PersistRecord<ShardReport>)new ViewPromiseRecord<ShardReport>(log, b)),
        ["PilotRecord"] = Gen.Select(AnyInt, AnyBallot, (log, b) => (PersistRecord<ShardReport>)new PilotRecord<ShardReport>(log, b)),
        ["KnownSlotRecord"] = Gen.Select(AnyInt, AnyLong, (log, slot) => (PersistRecord<ShardReport>)new KnownSlotRecord<ShardReport>(log, slot)),
        ["SlotRecord"] = Gen.Select(
            AnyInt, AnyLong, AnyBallot, AnyStatus, AnyBallot, OptionalValue, Gen.Bool, AnyLong, AnyLong, Gen.Bool,
            (log, slot, promised, status, accepted, value, fastOk, replyDep, compatDep, guarded) => (PersistRecord<ShardReport>)new SlotRecord<ShardReport>(
                log, slot, promised, status, accepted, value, fastOk, replyDep, compatDep, guarded)),
        ["CheckpointRecord"] = Gen.Select(
            AnyLong, AnyLong, AnyLong, AnyLong, Gen.Select(AnyInt, AnyLong).Array[0, 8],
            (head0, head1, base0, base1, marks) => (PersistRecord<ShardReport>)new CheckpointRecord<ShardReport>(
                head0, head1, base0, base1, marks.DistinctBy(m => m.Item1).ToDictionary(m => m.Item1, m => m.Item2))),
        ["RebuildRecord"] = Gen.Select(
            AnyBallot, AnyBallot, AnyLong, AnyLong, AnyInt,
            (view0, view1, known0, known1, round) => (PersistRecord<ShardReport>)new RebuildRecord<ShardReport>(
                new RebuildFloor(view0, view1, known0, known1, round))),
    };

    private static readonly Gen<Message<ShardReport>> AnyMessage = Gen.OneOf<Message<ShardReport>>([.. MessageGens.Values]);

    public static TheoryData<string> MessageTypes => new(MessageGens.Keys);

    public static TheoryData<string> RecordTypes => new(RecordGens.Keys);

    // ---- round trips ------------------------------------------------------------------------------------------------

    [Fact]
    public void Generators_cover_every_concrete_message_and_record_type()
    {
        var messageTypes = typeof(Message<ShardReport>).Assembly.GetTypes()
            .Where(t => t.IsGenericTypeDefinition && !t.IsAbstract && t.BaseType is { IsGenericType: true } b && b.GetGenericTypeDefinition() == typeof(Message<>))
            .Select(t => t.Name.Split('`')[0]);
        var recordTypes = typeof(PersistRecord<ShardReport>).Assembly.GetTypes()
            .Where(t => t.IsGenericTypeDefinition && !t.IsAbstract && t.BaseType is { IsGenericType: true } b && b.GetGenericTypeDefinition() == typeof(PersistRecord<>))
            .Select(t => t.Name.Split('`')[0]);

        Assert.Equal(messageTypes.Order(), MessageGens.Keys.Order());
        Assert.Equal(recordTypes.Order(), RecordGens.Keys.Order());
    }

    [Theory]
    [MemberData(nameof(MessageTypes))]
    public void Every_message_type_round_trips(string type)
    {
        MessageGens[type].Sample(message =>
        {
            var decoded = ReplicaCodec.DecodeMessages(ReplicaCodec.EncodeMessages([message]));
            AssertSameMessage(message, Assert.Single(decoded));
        }, iter: Iterations);
    }

    [Theory]
    [MemberData(nameof(RecordTypes))]
    public void Every_record_type_round_trips(string type)
    {
        RecordGens[type].Sample(record => AssertSameRecord(record, ReplicaCodec.DecodeRecord(ReplicaCodec.EncodeRecord(record))), iter: Iterations);
    }

    [Fact]
    public void Multi_message_packets_round_trip_in_order()
    {
        AnyMessage.Array[1, 12].Sample(messages =>
        {
            var decoded = ReplicaCodec.DecodeMessages(ReplicaCodec.EncodeMessages(messages));
            Assert.Equal(messages.Length, decoded.Length);
            for (var i = 0; i < messages.Length; i++)
            {
                AssertSameMessage(messages[i], decoded[i]);
            }
        }, iter: Iterations);
    }

    [Fact]
    public void Layout_is_pinned()
    {
        // version 1, count 1, tag 7 (CommitAck), log 1, slot 2.
        Assert.Equal(
            Convert.FromHexString("01" + "01000000" + "07" + "01000000" + "0200000000000000"),
            ReplicaCodec.EncodeMessages([new CommitAck<ShardReport>(1, 2)]));

        // version 1, tag 2 (PilotRecord), log 0, ballot None.
        Assert.Equal(
            Convert.FromHexString("01" + "02" + "00000000" + "FFFFFFFF" + "FFFFFFFF"),
            ReplicaCodec.EncodeRecord(new PilotRecord<ShardReport>(0, Ballot.None)));

        Assert.Equal(20, ReplicaCodec.RecordKind);
    }

    [Fact]
    public void Checkpoint_record_layout_is_pinned_and_a_repeated_client_is_rejected()
    {
        var record = new CheckpointRecord<ShardReport>(7, 5, 3, 2, new Dictionary<int, long> { [9] = 4, [1] = 6 });
        var bytes = ReplicaCodec.EncodeRecord(record);

        // version 1, tag 5, heads 7 and 5, bases 3 and 2, two marks in client order: (1, 6), (9, 4).
        Assert.Equal(
            Convert.FromHexString("01" + "05" + "0700000000000000" + "0500000000000000" + "0300000000000000" + "0200000000000000"
                + "02000000" + "01000000" + "0600000000000000" + "09000000" + "0400000000000000"),
            bytes);
        AssertSameRecord(record, ReplicaCodec.DecodeRecord(bytes));

        var repeated = (byte[])bytes.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(repeated.AsSpan(bytes.Length - 12), 1);
        Assert.Contains("two high-water marks", Assert.Throws<InvalidDataException>(() => ReplicaCodec.DecodeRecord(repeated)).Message);

        for (var length = 0; length < bytes.Length; length++)
        {
            var prefix = bytes[..length];
            Assert.Throws<InvalidDataException>(() => ReplicaCodec.DecodeRecord(prefix));
        }
    }

    [Fact]
    public void Rebuild_record_layout_is_pinned()
    {
        var record = new RebuildRecord<ShardReport>(new RebuildFloor(new Ballot(3, 1), Ballot.None, 9, -1, 4));
        var bytes = ReplicaCodec.EncodeRecord(record);

        // version 1, tag 6, view floors (round, replica) of logs 0 and 1, known entries of logs 0 and 1, max round.
        Assert.Equal(
            Convert.FromHexString("01" + "06" + "03000000" + "01000000" + "FFFFFFFF" + "FFFFFFFF"
                + "0900000000000000" + "FFFFFFFFFFFFFFFF" + "04000000"),
            bytes);
        AssertSameRecord(record, ReplicaCodec.DecodeRecord(bytes));
        for (var length = 0; length < bytes.Length; length++)
        {
            var prefix = bytes[..length];
            Assert.Throws<InvalidDataException>(() => ReplicaCodec.DecodeRecord(prefix));
        }
    }

    // ---- malformed input --------------------------------------------------------------------------------------------

    [Fact]
    public void Every_truncation_of_a_packet_is_rejected()
    {
        var packet = ReplicaCodec.EncodeMessages(SamplePacket());
        for (var length = 0; length < packet.Length; length++)
        {
            var prefix = packet[..length];
            Assert.Throws<InvalidDataException>(() => ReplicaCodec.DecodeMessages(prefix));
        }

        Assert.Equal(SamplePacket().Length, ReplicaCodec.DecodeMessages(packet).Length);
    }

    [Fact]
    public void Every_truncation_of_a_record_is_rejected()
    {
        var bytes = ReplicaCodec.EncodeRecord(SampleSlotRecord());
        for (var length = 0; length < bytes.Length; length++)
        {
            var prefix = bytes[..length];
            Assert.Throws<InvalidDataException>(() => ReplicaCodec.DecodeRecord(prefix));
        }

        AssertSameRecord(SampleSlotRecord(), ReplicaCodec.DecodeRecord(bytes));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(15)]
    [InlineData(99)]
    [InlineData(255)]
    public void Unknown_message_tag_is_rejected(byte tag)
    {
        var packet = ReplicaCodec.EncodeMessages([new CommitAck<ShardReport>(1, 2)]);
        packet[5] = tag;
        var e = Assert.Throws<InvalidDataException>(() => ReplicaCodec.DecodeMessages(packet));
        Assert.Contains("unknown message tag", e.Message);
    }

    [Fact]
    public void Unknown_record_tag_and_unknown_versions_are_rejected()
    {
        var record = ReplicaCodec.EncodeRecord(new KnownSlotRecord<ShardReport>(1, 2));
        var badTag = (byte[])record.Clone();
        badTag[1] = 9;
        Assert.Contains("unknown record tag", Assert.Throws<InvalidDataException>(() => ReplicaCodec.DecodeRecord(badTag)).Message);

        var badVersion = (byte[])record.Clone();
        badVersion[0] = 2;
        Assert.Contains("version", Assert.Throws<InvalidDataException>(() => ReplicaCodec.DecodeRecord(badVersion)).Message);

        var packet = ReplicaCodec.EncodeMessages([new CommitAck<ShardReport>(1, 2)]);
        packet[0] = 0;
        Assert.Contains("version", Assert.Throws<InvalidDataException>(() => ReplicaCodec.DecodeMessages(packet)).Message);
    }

    [Fact]
    public void Trailing_bytes_are_rejected()
    {
        var packet = ReplicaCodec.EncodeMessages(SamplePacket());
        Assert.Contains("trailing", Assert.Throws<InvalidDataException>(() => ReplicaCodec.DecodeMessages([.. packet, 0])).Message);

        var record = ReplicaCodec.EncodeRecord(SampleSlotRecord());
        Assert.Contains("trailing", Assert.Throws<InvalidDataException>(() => ReplicaCodec.DecodeRecord([.. record, 0])).Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    [InlineData(int.MaxValue)]
    [InlineData(2)]
    public void Impossible_message_counts_are_rejected(int count)
    {
        var packet = ReplicaCodec.EncodeMessages([new CommitAck<ShardReport>(1, 2)]);
        BinaryPrimitives.WriteInt32LittleEndian(packet.AsSpan(1), count);
        Assert.Throws<InvalidDataException>(() => ReplicaCodec.DecodeMessages(packet));
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    [InlineData(int.MaxValue)]
    [InlineData(1 << 20)]
    [InlineData(3)]
    public void Impossible_command_counts_are_rejected(int count)
    {
        var value = new EntryValue<ShardReport>(false, 5, [Command(1, 1), Command(2, 2)]);
        var packet = ReplicaCodec.EncodeMessages([new Commit<ShardReport>(0, 7, value)]);

        // version, message count, tag, log, slot, value kind, dependency, then the command count.
        const int countOffset = 1 + 4 + 1 + 4 + 8 + 1 + 8;
        Assert.Equal(2, BinaryPrimitives.ReadInt32LittleEndian(packet.AsSpan(countOffset)));
        BinaryPrimitives.WriteInt32LittleEndian(packet.AsSpan(countOffset), count);
        Assert.Contains("command count", Assert.Throws<InvalidDataException>(() => ReplicaCodec.DecodeMessages(packet)).Message);
    }

    [Fact]
    public void Impossible_conflict_counts_and_bad_flag_bytes_are_rejected()
    {
        var reply = new PrepareReply<ShardReport>(
            0, 1, new Ballot(2, 1), new SlotReport<ShardReport>(SlotStatus.Empty, Ballot.None, null, false), 4, true, [new ConflictReport(5, true, 0)]);
        var packet = ReplicaCodec.EncodeMessages([reply]);

        // The conflict list is last: count (4 bytes) then one 17-byte conflict.
        var countOffset = packet.Length - 17 - 4;
        var tooMany = (byte[])packet.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(tooMany.AsSpan(countOffset), 2);
        Assert.Throws<InvalidDataException>(() => ReplicaCodec.DecodeMessages(tooMany));
        BinaryPrimitives.WriteInt32LittleEndian(tooMany.AsSpan(countOffset), -5);
        Assert.Throws<InvalidDataException>(() => ReplicaCodec.DecodeMessages(tooMany));

        // The committed flag of the conflict must be 0 or 1.
        var badFlag = (byte[])packet.Clone();
        badFlag[packet.Length - 9] = 2;
        Assert.Contains("flag", Assert.Throws<InvalidDataException>(() => ReplicaCodec.DecodeMessages(badFlag)).Message);

        // The slot status byte comes right after version, count, tag, log, slot and ballot.
        var badStatus = (byte[])packet.Clone();
        badStatus[1 + 4 + 1 + 4 + 8 + 8] = 4;
        Assert.Contains("slot status", Assert.Throws<InvalidDataException>(() => ReplicaCodec.DecodeMessages(badStatus)).Message);
    }

    [Fact]
    public void Corrupted_packets_decode_or_throw_InvalidDataException_only()
    {
        var packet = ReplicaCodec.EncodeMessages(SamplePacket());
        Gen.Select(Gen.Int[0, packet.Length - 1], Gen.Byte, Gen.Int[0, packet.Length - 1], Gen.Byte).Sample(t =>
        {
            var corrupted = (byte[])packet.Clone();
            corrupted[t.Item1] = t.Item2;
            corrupted[t.Item3] = t.Item4;
            try
            {
                ReplicaCodec.DecodeMessages(corrupted);
            }
            catch (InvalidDataException)
            {
            }
        }, iter: 2000);

        Gen.Byte.Array[0, 200].Sample(bytes =>
        {
            try
            {
                ReplicaCodec.DecodeMessages(bytes);
            }
            catch (InvalidDataException)
            {
            }

            try
            {
                ReplicaCodec.DecodeRecord(bytes);
            }
            catch (InvalidDataException)
            {
            }
        }, iter: 2000);
    }

    [Fact]
    public void Unknown_subtypes_and_empty_packets_are_refused_on_encode()
    {
        Assert.Throws<ArgumentException>(() => ReplicaCodec.EncodeMessages([new CommitAck<ShardReport>(0, 0), new RogueMessage()]));
        Assert.Throws<ArgumentException>(() => ReplicaCodec.EncodeMessages([]));
        Assert.Throws<ArgumentException>(() => ReplicaCodec.EncodeRecord(new RogueRecord()));
    }

    // ---- helpers ----------------------------------------------------------------------------------------------------

    private sealed record RogueMessage : Message<ShardReport>;

    private sealed record RogueRecord : PersistRecord<ShardReport>;

    private static Command<ShardReport> Command(int client, long seq) =>
        new(new CommandId(client, seq), new ShardReport(client, seq, 10 * seq, 9 * seq, 1_000_000 + seq, 3, client % 2 == 0, client % 3 == 0));

    /// <summary>One message of every type, with values that exercise every optional and repeated field.</summary>
    private static Message<ShardReport>[] SamplePacket()
    {
        var value = new EntryValue<ShardReport>(false, 3, [Command(1, 10), Command(2, long.MaxValue)]);
        var b = new Ballot(4, 2);
        return
        [
            new FastAccept<ShardReport>(0, 5, b, value),
            new FastAcceptReply<ShardReport>(0, 5, b, false, 7),
            new Accept<ShardReport>(1, 6, b, EntryValue<ShardReport>.NoOp),
            new AcceptReply<ShardReport>(1, 6, b),
            new Reject<ShardReport>(0, 5, b, new Ballot(5, 0), Ballot.None),
            new Commit<ShardReport>(0, 5, value),
            new CommitAck<ShardReport>(0, 5),
            new Prepare<ShardReport>(1, 9, b, 4),
            new Prepare<ShardReport>(1, 9, b, null),
            new PrepareReply<ShardReport>(
                1, 9, b, new SlotReport<ShardReport>(SlotStatus.FastAccepted, b, value, true), 4, true, [new ConflictReport(5, false, -1), new ConflictReport(6, true, 8)]),
            new ViewPrepare<ShardReport>(0, b),
            new ViewPrepareReply<ShardReport>(0, b, true, b, 11),
            new Heartbeat<ShardReport>(b, Ballot.None, true, false, 5, 0, 12, -1),
            new AnchorAck<ShardReport>(0, b, 12),
            new CatchUpRequest<ShardReport>(1, 3),
        ];
    }

    private static SlotRecord<ShardReport> SampleSlotRecord() => new(
        1, 9, new Ballot(3, 1), SlotStatus.Accepted, new Ballot(2, 0), new EntryValue<ShardReport>(false, 4, [Command(7, 70)]), true, 4, -1, true);

    private static void AssertSameMessage(Message<ShardReport> expected, Message<ShardReport> actual)
    {
        Assert.Equal(expected.GetType(), actual.GetType());
        switch (expected)
        {
            // Records compare EntryValue by reference and ImmutableArray by array identity: compare those apart and
            // everything else through record equality after copying them over.
            case FastAccept<ShardReport> e:
                var fa = (FastAccept<ShardReport>)actual;
                Assert.Equal(e with { Value = fa.Value }, fa);
                AssertSameValue(e.Value, fa.Value);
                break;
            case Accept<ShardReport> e:
                var ac = (Accept<ShardReport>)actual;
                Assert.Equal(e with { Value = ac.Value }, ac);
                AssertSameValue(e.Value, ac.Value);
                break;
            case Commit<ShardReport> e:
                var co = (Commit<ShardReport>)actual;
                Assert.Equal(e with { Value = co.Value }, co);
                AssertSameValue(e.Value, co.Value);
                break;
            case PrepareReply<ShardReport> e:
                var pr = (PrepareReply<ShardReport>)actual;
                Assert.Equal(e with { State = pr.State, Conflicts = pr.Conflicts }, pr);
                Assert.Equal(e.State with { Value = pr.State.Value }, pr.State);
                AssertSameValue(e.State.Value, pr.State.Value);
                Assert.True(e.Conflicts.SequenceEqual(pr.Conflicts), $"conflicts differ: [{string.Join(", ", e.Conflicts)}] vs [{string.Join(", ", pr.Conflicts)}]");
                break;
            default:
                Assert.Equal(expected, actual);
                break;
        }
    }

    private static void AssertSameRecord(PersistRecord<ShardReport> expected, PersistRecord<ShardReport> actual)
    {
        Assert.Equal(expected.GetType(), actual.GetType());
        if (expected is SlotRecord<ShardReport> e)
        {
            var a = (SlotRecord<ShardReport>)actual;
            Assert.Equal(e with { Value = a.Value }, a);
            AssertSameValue(e.Value, a.Value);
        }
        else if (expected is CheckpointRecord<ShardReport> c)
        {
            // The high-water map compares by reference in the record: compare it apart.
            var a = (CheckpointRecord<ShardReport>)actual;
            Assert.Equal(c with { HighWater = a.HighWater }, a);
            Assert.Equal(c.HighWater.OrderBy(kv => kv.Key), a.HighWater.OrderBy(kv => kv.Key));
        }
        else
        {
            Assert.Equal(expected, actual);
        }
    }

    private static void AssertSameValue(EntryValue<ShardReport>? expected, EntryValue<ShardReport>? actual)
    {
        if (expected is null)
        {
            Assert.Null(actual);
            return;
        }

        Assert.NotNull(actual);
        Assert.Equal(expected.IsNoOp, actual.IsNoOp);
        Assert.Equal(expected.Dep, actual.Dep);
        Assert.Equal(expected.Commands.Length, actual.Commands.Length);
        for (var i = 0; i < expected.Commands.Length; i++)
        {
            Assert.Equal(expected.Commands[i].Id, actual.Commands[i].Id);
            Assert.Equal(expected.Commands[i].Payload, actual.Commands[i].Payload);
        }
    }
}
