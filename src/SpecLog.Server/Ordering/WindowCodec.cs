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
    /// Encodes a window: window, start GSN, first cut, view (8 bytes each), W, shard count (4 bytes each), quotas, then
    /// the cut interval factor and the cut layout (4 bytes each) unless they are 1 and blocked and no shard has departed
    /// (so records of windows with Belfast's defaults stay as before), then, if shards have departed, their count and
    /// ids (4 bytes each), then voids (see below). Records with only the factor (44 + 4n bytes) are still read.
    /// </summary>
    public static byte[] Encode(WindowConfig w)
    {
        var departed = w.Departed.Length;
        var voids = w.Voids.Length;
        // Voids with ends (a rejoin), or voids in a window where no shard departs, take the second void format: a
        // negative count, then (shard, first slot, end) each; failures alone keep the first (count, then (shard, slot)).
        var endedVoids = voids > 0 && (departed == 0 || w.Voids.Any(v => v.IsRejoin));
        var departedBlock = departed > 0 || voids > 0;
        var extended = w.CutIntervalFactor != 1 || w.RequestedLayout != CutLayout.Blocked || departedBlock;
        var bytes = new byte[40 + 4 * w.ShardCount + (extended ? 8 : 0) + (departedBlock ? 4 + 4 * departed : 0) + (voids > 0 ? 4 + (endedVoids ? 20 : 12) * voids : 0)];
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

        if (extended)
        {
            BinaryPrimitives.WriteInt32LittleEndian(span[(40 + 4 * w.ShardCount)..], w.CutIntervalFactor);
            BinaryPrimitives.WriteInt32LittleEndian(span[(44 + 4 * w.ShardCount)..], (int)w.RequestedLayout);
        }

        if (departedBlock)
        {
            var at = 48 + 4 * w.ShardCount;
            BinaryPrimitives.WriteInt32LittleEndian(span[at..], departed);
            for (var i = 0; i < departed; i++)
            {
                BinaryPrimitives.WriteInt32LittleEndian(span[(at + 4 + 4 * i)..], w.Departed[i]);
            }

            if (voids > 0)
            {
                at += 4 + 4 * departed;
                BinaryPrimitives.WriteInt32LittleEndian(span[at..], endedVoids ? -voids : voids);
                var size = endedVoids ? 20 : 12;
                for (var i = 0; i < voids; i++)
                {
                    BinaryPrimitives.WriteInt32LittleEndian(span[(at + 4 + size * i)..], w.Voids[i].Shard);
                    BinaryPrimitives.WriteInt64LittleEndian(span[(at + 8 + size * i)..], w.Voids[i].FromSlot);
                    if (endedVoids)
                    {
                        BinaryPrimitives.WriteInt64LittleEndian(span[(at + 16 + size * i)..], w.Voids[i].ToSlot);
                    }
                }
            }
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
        var d = n >= 1 && span.Length >= 52 + 4 * n ? BinaryPrimitives.ReadInt32LittleEndian(span[(48 + 4 * n)..]) : 0;
        var voidAt = 52 + 4 * n + 4 * d;
        var rawVoids = d is >= 0 and <= 4096 && span.Length >= voidAt + 4 ? BinaryPrimitives.ReadInt32LittleEndian(span[voidAt..]) : 0;
        var ended = rawVoids < 0;
        var v = Math.Abs(rawVoids);
        var size = ended ? 20 : 12;
        if (n < 1 || d < 0 || d > n || v > 4096 || (!ended && v > d)
            || (span.Length != 40 + 4 * n && span.Length != 44 + 4 * n && span.Length != 48 + 4 * n && span.Length != voidAt && span.Length != voidAt + 4 + size * v))
        {
            throw new InvalidDataException($"A window record for {n} shards must have {40 + 4 * n}, {44 + 4 * n}, {48 + 4 * n} or 52 + 4·departed (+ voids) bytes, got {span.Length}.");
        }

        var factor = span.Length >= 44 + 4 * n ? BinaryPrimitives.ReadInt32LittleEndian(span[(40 + 4 * n)..]) : 1;
        var layout = span.Length >= 48 + 4 * n ? (CutLayout)BinaryPrimitives.ReadInt32LittleEndian(span[(44 + 4 * n)..]) : CutLayout.Blocked;
        var departed = ImmutableArray.CreateBuilder<int>(d);
        for (var i = 0; i < d; i++)
        {
            departed.Add(BinaryPrimitives.ReadInt32LittleEndian(span[(52 + 4 * n + 4 * i)..]));
        }

        var voids = ImmutableArray.CreateBuilder<ShardVoid>(v);
        for (var i = 0; i < v; i++)
        {
            var at = voidAt + 4 + size * i;
            voids.Add(new ShardVoid(
                BinaryPrimitives.ReadInt32LittleEndian(span[at..]),
                BinaryPrimitives.ReadInt64LittleEndian(span[(at + 4)..]),
                ended ? BinaryPrimitives.ReadInt64LittleEndian(span[(at + 12)..]) : -1));
        }

        if (factor < 1 || !Enum.IsDefined(layout))
        {
            throw new InvalidDataException($"A window record has cut interval factor {factor} and layout {(int)layout}; expected a factor of at least 1 and layout 0 or 1.");
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
            factor,
            layout,
            departed.MoveToImmutable(),
            voids.MoveToImmutable());
    }
}
