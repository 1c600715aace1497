using System.Buffers.Binary;

namespace SpecLog.Samples.FraudDetection;

/// <summary>A payment as the log carries it: when it was appended (UTC µs), the user, the amount in cents.</summary>
public readonly record struct Payment(long AppendedAtMicros, int User, int Cents)
{
    /// <summary>Bytes of a payment record.</summary>
    public const int Size = 16;

    /// <summary>The record's bytes.</summary>
    public byte[] Encode()
    {
        var bytes = new byte[Size];
        BinaryPrimitives.WriteInt64LittleEndian(bytes, AppendedAtMicros);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), User);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(12), Cents);
        return bytes;
    }

    /// <summary>The payment in a record, or null for a record that is not one.</summary>
    public static Payment? Decode(ReadOnlySpan<byte> bytes) =>
        bytes.Length == Size
            ? new Payment(BinaryPrimitives.ReadInt64LittleEndian(bytes), BinaryPrimitives.ReadInt32LittleEndian(bytes[8..]), BinaryPrimitives.ReadInt32LittleEndian(bytes[12..]))
            : null;

    /// <summary>
    /// The <paramref name="i"/>-th payment of a deterministic stream: 1,000 users, amounts around a per-user typical value,
    /// one in 200 a large outlier.
    /// </summary>
    public static Payment Generate(long i, long appendedAtMicros)
    {
        var h = (ulong)i * 0x9E3779B97F4A7C15UL;
        h ^= h >> 29;
        var user = (int)(h % 1000);
        var typical = 1_000 + user * 37 % 20_000;
        var jitter = (int)((h >> 20) % 2_000) - 1_000;
        var outlier = (h >> 40) % 200 == 0;
        return new Payment(appendedAtMicros, user, outlier ? typical * 25 : Math.Max(100, typical + jitter * typical / 5_000));
    }
}
