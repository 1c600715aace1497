using System.Buffers.Binary;
using System.Collections.Immutable;
using SpecLog.FixAnte;

namespace SpecLog.Server.Ordering;

/// <summary>The on-disk form of a window configuration in the sequencer's window log.</summary>
public static class WindowCodec
{
    /// <summary>Storage entry kind of a window configuration.</summary>
    public const byte Kind = 3;

    /// <summary>
    /// Encodes a window: window, start GSN, first cut, view (8 bytes each), W, shard count (4 bytes each), quotas, and
    /// the cut interval factor (4 bytes) when it is not 1 (so records of windows with the default stay as before).
    /// </summary>
    public static byte[] Encode(WindowConfig w)
    {
        var bytes = new byte[40 + 4 * w.ShardCount + (w.CutIntervalFactor == 1 ? 0 : 4)];
        var span = bytes.AsSpan();
        BinaryPrimitives.WriteInt64LittleEndian(span, w.Window);
        BinaryPrimitives.WriteInt64LittleEndian(span[8..], w.StartGsn);
        BinaryPrimitives.WriteInt64LittleEndian(span[16..], w.FirstCut);
        BinaryPrimitives.WriteInt64LittleEndian(span[24..], w.ViewId);
        BinaryPrimitives.WriteInt32LittleEndian(span[32..], w.CutsPerWindow);
        BinaryPrimitives.WriteInt32LittleEndian(span[36..], w.ShardCount);
        for (var s = 0; s < w.ShardCount; s++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(span[(40 + 4 * s)..], w.Quotas[s]);
        }

        if (w.CutIntervalFactor != 1)
        {
            BinaryPrimitives.WriteInt32LittleEndian(span[(40 + 4 * w.ShardCount)..], w.CutIntervalFactor);
        }

        return bytes;
    }

    /// <summary>Decodes what <see cref="Encode"/> wrote.</summary>
    public static WindowConfig Decode(ReadOnlySpan<byte> span)
    {
        if (span.Length < 40)
        {
            throw new InvalidDataException($"A window record needs at least 40 bytes, got {span.Length}.");
        }

        var n = BinaryPrimitives.ReadInt32LittleEndian(span[36..]);
        if (n < 1 || (span.Length != 40 + 4 * n && span.Length != 44 + 4 * n))
        {
            throw new InvalidDataException($"A window record for {n} shards must have {40 + 4 * n} or {44 + 4 * n} bytes, got {span.Length}.");
        }

        var quotas = ImmutableArray.CreateBuilder<int>(n);
        for (var s = 0; s < n; s++)
        {
            quotas.Add(BinaryPrimitives.ReadInt32LittleEndian(span[(40 + 4 * s)..]));
        }

        return new WindowConfig(
            BinaryPrimitives.ReadInt64LittleEndian(span),
            BinaryPrimitives.ReadInt64LittleEndian(span[8..]),
            BinaryPrimitives.ReadInt64LittleEndian(span[16..]),
            BinaryPrimitives.ReadInt32LittleEndian(span[32..]),
            quotas.MoveToImmutable(),
            BinaryPrimitives.ReadInt64LittleEndian(span[24..]),
            span.Length == 44 + 4 * n ? BinaryPrimitives.ReadInt32LittleEndian(span[(40 + 4 * n)..]) : 1);
    }
}
