using System.Buffers.Binary;

namespace SpecLog.Quickstart;

/// <summary>
/// The records the quickstart appends: a magic number, the run id (so records of other writers or earlier runs are
/// told apart), the producer, its sequence number and the send timestamp (<see cref="System.Diagnostics.Stopwatch"/>
/// ticks of this process), then filler up to the requested size.
/// </summary>
internal static class RecordPayload
{
    /// <summary>Bytes of the header; the smallest record size.</summary>
    public const int HeaderSize = 32;

    private const uint Magic = 0x5351_4C53; // "SLQS"

    public static byte[] Create(long runId, int producer, long sequence, long timestamp, int size)
    {
        var bytes = new byte[Math.Max(size, HeaderSize)];
        var span = bytes.AsSpan();
        BinaryPrimitives.WriteUInt32LittleEndian(span, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(span[4..], producer);
        BinaryPrimitives.WriteInt64LittleEndian(span[8..], runId);
        BinaryPrimitives.WriteInt64LittleEndian(span[16..], sequence);
        BinaryPrimitives.WriteInt64LittleEndian(span[24..], timestamp);
        for (var i = HeaderSize; i < bytes.Length; i++)
        {
            bytes[i] = (byte)('a' + (i % 26));
        }

        return bytes;
    }

    /// <summary>Reads a record of run <paramref name="runId"/>; false for anything else in the log.</summary>
    public static bool TryRead(ReadOnlySpan<byte> payload, long runId, out int producer, out long sequence, out long timestamp)
    {
        producer = 0;
        sequence = 0;
        timestamp = 0;
        if (payload.Length < HeaderSize
            || BinaryPrimitives.ReadUInt32LittleEndian(payload) != Magic
            || BinaryPrimitives.ReadInt64LittleEndian(payload[8..]) != runId)
        {
            return false;
        }

        producer = BinaryPrimitives.ReadInt32LittleEndian(payload[4..]);
        sequence = BinaryPrimitives.ReadInt64LittleEndian(payload[16..]);
        timestamp = BinaryPrimitives.ReadInt64LittleEndian(payload[24..]);
        return true;
    }
}
