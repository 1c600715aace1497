using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;

namespace SpecLog.Storage;

/// <summary>
/// On-disk frame layout (little endian, every frame starts and ends 8-byte aligned):
/// <code>
///  0  u32 payload length
///  4  u8  kind
///  5  u8  magic (0xA5, format version 1)
///  6  u16 flags (bit 0: seal frame, carries no entry)
///  8  i64 entry index
/// 16  u32 sync lag: index minus the number of entries known durable when the frame was written (saturating)
/// 20  u32 CRC32C over bytes [0,20) and the zero-padded payload
/// 24  payload, zero padded to a multiple of 8
/// </code>
/// </summary>
internal static class Frame
{
    public const int HeaderSize = 24;
    public const byte Magic = 0xA5;
    public const ushort FlagSeal = 1;

    public static int Align8(int n) => (n + 7) & ~7;

    public static int Length(int payloadLength) => HeaderSize + Align8(payloadLength);

    /// <summary>Writes the header (sync lag and CRC left zero), the payload and the padding.</summary>
    public static void WriteUnsealed(Span<byte> frame, long index, byte kind, ushort flags, ReadOnlySpan<byte> payload)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)payload.Length);
        frame[4] = kind;
        frame[5] = Magic;
        BinaryPrimitives.WriteUInt16LittleEndian(frame[6..], flags);
        BinaryPrimitives.WriteInt64LittleEndian(frame[8..], index);
        BinaryPrimitives.WriteUInt64LittleEndian(frame[16..], 0UL);
        payload.CopyTo(frame[HeaderSize..]);
        int pad = Align8(payload.Length) - payload.Length;
        if (pad > 0)
        {
            frame.Slice(HeaderSize + payload.Length, pad).Clear();
        }
    }

    /// <summary>Stores the sync lag and the CRC into a frame written by <see cref="WriteUnsealed"/>.</summary>
    public static void Seal(Span<byte> frame, uint syncLag)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(frame[16..], syncLag);
        BinaryPrimitives.WriteUInt32LittleEndian(frame[20..], ComputeCrc(frame));
    }

    public static uint SyncLag(long index, long durableIndex)
    {
        long lag = index - durableIndex;
        return lag >= uint.MaxValue ? uint.MaxValue : (uint)Math.Max(0, lag);
    }

    /// <summary>CRC32C over the header without its CRC field and over the padded payload, eight bytes at a time.</summary>
    public static uint ComputeCrc(ReadOnlySpan<byte> frame)
    {
        uint crc = 0xFFFFFFFFu;
        crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(frame));
        crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(frame[8..]));
        crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt32LittleEndian(frame[16..]));
        ReadOnlySpan<byte> body = frame[HeaderSize..];
        if (BitConverter.IsLittleEndian)
        {
            foreach (ulong word in MemoryMarshal.Cast<byte, ulong>(body))
            {
                crc = BitOperations.Crc32C(crc, word);
            }
        }
        else
        {
            for (int i = 0; i + 8 <= body.Length; i += 8)
            {
                crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(body[i..]));
            }
        }

        return ~crc;
    }

    public static uint PayloadLength(ReadOnlySpan<byte> header) => BinaryPrimitives.ReadUInt32LittleEndian(header);

    public static long Index(ReadOnlySpan<byte> header) => BinaryPrimitives.ReadInt64LittleEndian(header[8..]);

    public static byte Kind(ReadOnlySpan<byte> header) => header[4];

    public static bool IsSeal(ReadOnlySpan<byte> header) => (BinaryPrimitives.ReadUInt16LittleEndian(header[6..]) & FlagSeal) != 0;

    /// <summary>Index below which every entry was durable when this frame was written.</summary>
    public static long DurableAtWrite(ReadOnlySpan<byte> header) =>
        Index(header) - BinaryPrimitives.ReadUInt32LittleEndian(header[16..]);

    /// <summary>
    /// Checks the header fields that can be checked without the payload and returns the frame length,
    /// or -1 if the header cannot start a valid frame that ends at or before <paramref name="room"/> bytes.
    /// </summary>
    public static long CheckHeader(ReadOnlySpan<byte> header, long room)
    {
        if (room < HeaderSize || header[5] != Magic)
        {
            return -1;
        }

        ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(header[6..]);
        uint length = PayloadLength(header);
        long index = Index(header);
        uint lag = BinaryPrimitives.ReadUInt32LittleEndian(header[16..]);
        if ((flags & ~FlagSeal) != 0 || index < 0 || (lag != uint.MaxValue && lag > index))
        {
            return -1;
        }

        if ((flags & FlagSeal) != 0 && (length != 0 || lag != 0))
        {
            return -1;
        }

        long frameLength = HeaderSize + (((long)length + 7) & ~7L);
        return frameLength <= room ? frameLength : -1;
    }

    /// <summary>True if the complete frame has a matching CRC.</summary>
    public static bool CrcMatches(ReadOnlySpan<byte> frame) =>
        BinaryPrimitives.ReadUInt32LittleEndian(frame[20..]) == ComputeCrc(frame);
}
