using System.Buffers.Binary;
using SpecLog.Storage;

namespace SpecLog.Server.Replication;

/// <summary>
/// What a shard replica must remember across crashes besides its log: the highest epoch it has promised (so it never
/// helps an older leader again) and its epoch history (the log index where each epoch it holds entries of starts).
/// </summary>
/// <param name="Promised">The highest epoch promised (voted for, or joined).</param>
/// <param name="Epochs">Epoch numbers, increasing.</param>
/// <param name="Starts">The log index where each epoch of <paramref name="Epochs"/> starts (non-decreasing).</param>
/// <param name="Rebuilding">
/// True while the replica replaces one whose disk was lost: it copies the leader's log, does not stand for election,
/// and votes only for a log at least as up to date as the floor, until its own durable log reaches the floor (see
/// <see cref="ShardReplicaCore"/>).
/// </param>
/// <param name="FloorEpoch">While rebuilding: the last entry's epoch of the most up-to-date log the other replicas held when it started.</param>
/// <param name="FloorEnd">While rebuilding: that log's end.</param>
internal sealed record ReplicaMeta(long Promised, long[] Epochs, long[] Starts, bool Rebuilding = false, long FloorEpoch = -1, long FloorEnd = 0)
{
    private const int MagicV1 = 0x5350_524D; // "SPRM": promised, epochs
    private const int Magic = 0x5350_5232; // "SPR2": promised, flags, floor epoch and end, epochs
    private const int HeaderV1 = 16;
    private const int Header = 36;

    /// <summary>A replica that has never served.</summary>
    public static readonly ReplicaMeta Empty = new(0, [], []);

    /// <summary>True if this state says nothing: the replica never promised, joined or rebuilt anything.</summary>
    public bool IsBlank => Promised == 0 && Epochs.Length == 0 && !Rebuilding;

    /// <summary>The epoch of the entry at log index <paramref name="index"/> per this history, or -1 if before every epoch.</summary>
    public long EpochAt(long index) => EpochAt(Epochs, Starts, index);

    /// <summary>The epoch of the last entry of a log ending at <paramref name="end"/> (an epoch that starts at the end counts: its leader had everything before it), or -1.</summary>
    public long LastEpoch(long end)
    {
        for (var i = Epochs.Length - 1; i >= 0; i--)
        {
            if (Starts[i] <= end)
            {
                return Epochs[i];
            }
        }

        return -1;
    }

    /// <summary>The epoch of index <paramref name="index"/> in a history.</summary>
    public static long EpochAt(long[] epochs, long[] starts, long index)
    {
        for (var i = epochs.Length - 1; i >= 0; i--)
        {
            if (starts[i] <= index)
            {
                return epochs[i];
            }
        }

        return -1;
    }

    /// <summary>
    /// How long a prefix of a log holding <paramref name="end"/> entries under this history agrees with a log under
    /// the leader's history: entries with the same epoch at the same index are the same entry, with the same entries
    /// before it, so the prefix runs up to the last index whose epoch both histories agree on.
    /// </summary>
    public long AgreedPrefix(long end, long[] leaderEpochs, long[] leaderStarts)
    {
        // Both histories are step functions of the index; walk their breakpoints from the end of this log downwards.
        var points = new SortedSet<long>();
        foreach (var s in Starts)
        {
            points.Add(s);
        }

        foreach (var s in leaderStarts)
        {
            points.Add(s);
        }

        points.Add(end);
        var upper = end;
        foreach (var p in points.Reverse())
        {
            if (p >= upper)
            {
                continue;
            }

            // Every index in [p, upper) has one epoch in each history.
            var mine = EpochAt(p);
            if (mine >= 0 && mine == EpochAt(leaderEpochs, leaderStarts, p))
            {
                return upper;
            }

            upper = p;
        }

        return 0;
    }

    /// <summary>The history with epoch <paramref name="epoch"/> starting at <paramref name="start"/> appended.</summary>
    public ReplicaMeta WithEpoch(long epoch, long start) =>
        this with { Promised = Math.Max(Promised, epoch), Epochs = [.. Epochs, epoch], Starts = [.. Starts, start] };

    /// <summary>Reads the meta file, or <see cref="Empty"/> if there is none.</summary>
    public static ReplicaMeta Load(string path)
    {
        if (!File.Exists(path))
        {
            return Empty;
        }

        var bytes = File.ReadAllBytes(path);
        var span = bytes.AsSpan();
        var magic = span.Length >= 4 ? BinaryPrimitives.ReadInt32LittleEndian(span) : 0;
        if (magic != Magic && magic != MagicV1)
        {
            throw new InvalidDataException($"{path} is not a shard replica state file.");
        }

        var header = magic == Magic ? Header : HeaderV1;
        if (span.Length < header)
        {
            throw new InvalidDataException($"{path} is damaged: {span.Length} bytes are shorter than its header.");
        }

        var promised = BinaryPrimitives.ReadInt64LittleEndian(span[4..]);
        var rebuilding = magic == Magic && (BinaryPrimitives.ReadInt32LittleEndian(span[12..]) & 1) != 0;
        var floorEpoch = magic == Magic ? BinaryPrimitives.ReadInt64LittleEndian(span[16..]) : -1;
        var floorEnd = magic == Magic ? BinaryPrimitives.ReadInt64LittleEndian(span[24..]) : 0;
        var count = BinaryPrimitives.ReadInt32LittleEndian(span[(header - 4)..]);
        if (count < 0 || span.Length != header + (count * 16))
        {
            throw new InvalidDataException($"{path} is damaged: {count} epochs do not fit its {span.Length} bytes.");
        }

        var epochs = new long[count];
        var starts = new long[count];
        for (var i = 0; i < count; i++)
        {
            epochs[i] = BinaryPrimitives.ReadInt64LittleEndian(span[(header + (i * 16))..]);
            starts[i] = BinaryPrimitives.ReadInt64LittleEndian(span[(header + 8 + (i * 16))..]);
        }

        return new ReplicaMeta(promised, epochs, starts, rebuilding, floorEpoch, floorEnd);
    }

    /// <summary>Writes the meta file atomically and durably.</summary>
    public void Save(string path, bool fsync)
    {
        var bytes = new byte[Header + (Epochs.Length * 16)];
        var span = bytes.AsSpan();
        BinaryPrimitives.WriteInt32LittleEndian(span, Magic);
        BinaryPrimitives.WriteInt64LittleEndian(span[4..], Promised);
        BinaryPrimitives.WriteInt32LittleEndian(span[12..], Rebuilding ? 1 : 0);
        BinaryPrimitives.WriteInt64LittleEndian(span[16..], FloorEpoch);
        BinaryPrimitives.WriteInt64LittleEndian(span[24..], FloorEnd);
        BinaryPrimitives.WriteInt32LittleEndian(span[32..], Epochs.Length);
        for (var i = 0; i < Epochs.Length; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(span[(Header + (i * 16))..], Epochs[i]);
            BinaryPrimitives.WriteInt64LittleEndian(span[(Header + 8 + (i * 16))..], Starts[i]);
        }

        DurableFile.Replace(path, bytes, fsync);
    }
}
