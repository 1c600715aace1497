using SpecLog.FixAnte;

namespace SpecLog.Server.Ordering;

/// <summary>The on-disk form of a <see cref="SequencerSnapshot"/> (inside an ordering replica's checkpoint).</summary>
public static class SequencerSnapshotCodec
{
    private const int Magic = 0x31535353; // "SSS1"

    /// <summary>Writes <paramref name="snapshot"/>: magic, base, windows, per-shard arrays, rate marks, counters.</summary>
    public static void Write(BinaryWriter writer, SequencerSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(snapshot);
        writer.Write(Magic);
        WindowBaseCodec.Write(writer, snapshot.Base);
        writer.Write(snapshot.Windows.Length);
        foreach (var w in snapshot.Windows)
        {
            var bytes = WindowCodec.Encode(w);
            writer.Write(bytes.Length);
            writer.Write(bytes);
        }

        WriteArrays(writer, snapshot.Longs, static (x, v) => x.Write(v));
        WriteArrays(writer, snapshot.Ints, static (x, v) => x.Write(v));
        WriteArrays(writer, snapshot.Flags, static (x, v) => x.Write(v));
        WriteArrays(writer, snapshot.RateMarks, static (x, v) => { x.Write(v.Micros); x.Write(v.Records); });
        WriteArrays(writer, [snapshot.Latest], static (x, v) => { x.Write(v.Micros); x.Write(v.Records); });
        WriteArrays(writer, [snapshot.Scalars], static (x, v) => x.Write(v));
    }

    /// <summary>Reads what <see cref="Write"/> wrote.</summary>
    /// <exception cref="InvalidDataException">The bytes are not a sequencer snapshot.</exception>
    public static SequencerSnapshot Read(BinaryReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        if (reader.ReadInt32() != Magic)
        {
            throw new InvalidDataException("Not a sequencer snapshot (bad magic).");
        }

        var start = WindowBaseCodec.Read(reader);
        var windows = new WindowConfig[Count(reader.ReadInt32())];
        for (var i = 0; i < windows.Length; i++)
        {
            windows[i] = WindowCodec.Decode(reader.ReadBytes(Count(reader.ReadInt32())));
        }

        return new SequencerSnapshot
        {
            Base = start,
            Windows = windows,
            Longs = ReadArrays(reader, static x => x.ReadInt64()),
            Ints = ReadArrays(reader, static x => x.ReadInt32()),
            Flags = ReadArrays(reader, static x => x.ReadBoolean()),
            RateMarks = ReadArrays(reader, static x => (x.ReadInt64(), x.ReadInt64())),
            Latest = ReadArrays(reader, static x => (x.ReadInt64(), x.ReadInt64())).Single(),
            Scalars = ReadArrays(reader, static x => x.ReadInt64()).Single(),
        };
    }

    private static void WriteArrays<T>(BinaryWriter writer, T[][] arrays, Action<BinaryWriter, T> write)
    {
        writer.Write(arrays.Length);
        foreach (var array in arrays)
        {
            writer.Write(array.Length);
            foreach (var v in array)
            {
                write(writer, v);
            }
        }
    }

    private static T[][] ReadArrays<T>(BinaryReader reader, Func<BinaryReader, T> read)
    {
        var arrays = new T[Count(reader.ReadInt32())][];
        for (var i = 0; i < arrays.Length; i++)
        {
            arrays[i] = new T[Count(reader.ReadInt32())];
            for (var j = 0; j < arrays[i].Length; j++)
            {
                arrays[i][j] = read(reader);
            }
        }

        return arrays;
    }

    private static int Count(int n) => n is >= 0 and <= 1 << 26 ? n : throw new InvalidDataException($"Bad count {n} in a sequencer snapshot.");
}
