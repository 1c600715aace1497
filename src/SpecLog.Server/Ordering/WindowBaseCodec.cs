using SpecLog.FixAnte;

namespace SpecLog.Server.Ordering;

/// <summary>The on-disk form of a <see cref="WindowBase"/>: where a trimmed window history starts.</summary>
public static class WindowBaseCodec
{
    private const int Magic = 0x31425753; // "SWB1"

    /// <summary>Writes <paramref name="start"/> (magic, window, start GSN, first cut, slot starts, voids).</summary>
    public static void Write(BinaryWriter writer, WindowBase start)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(start);
        writer.Write(Magic);
        writer.Write(start.Window);
        writer.Write(start.StartGsn);
        writer.Write(start.FirstCut);
        writer.Write(start.SlotStart.Length);
        foreach (var s in start.SlotStart)
        {
            writer.Write(s);
        }

        writer.Write(start.Voids.Length);
        foreach (var v in start.Voids)
        {
            writer.Write(v.Shard);
            writer.Write(v.FromSlot);
            writer.Write(v.ToSlot);
            writer.Write(v.Window);
            writer.Write(v.IsRejoin);
        }
    }

    /// <summary>Reads what <see cref="Write"/> wrote.</summary>
    /// <exception cref="InvalidDataException">The bytes are not a window base.</exception>
    public static WindowBase Read(BinaryReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        if (reader.ReadInt32() != Magic)
        {
            throw new InvalidDataException("Not a window base (bad magic).");
        }

        var window = reader.ReadInt64();
        var startGsn = reader.ReadInt64();
        var firstCut = reader.ReadInt64();
        var slots = new long[Count(reader.ReadInt32())];
        for (var i = 0; i < slots.Length; i++)
        {
            slots[i] = reader.ReadInt64();
        }

        var voids = new VoidSpan[Count(reader.ReadInt32())];
        for (var i = 0; i < voids.Length; i++)
        {
            voids[i] = new VoidSpan(reader.ReadInt32(), reader.ReadInt64(), reader.ReadInt64(), reader.ReadInt64(), reader.ReadBoolean());
        }

        return new WindowBase(window, startGsn, firstCut, [.. slots], [.. voids]);
    }

    private static int Count(int n) => n is >= 0 and <= 1 << 20 ? n : throw new InvalidDataException($"Bad count {n} in a window base.");
}
