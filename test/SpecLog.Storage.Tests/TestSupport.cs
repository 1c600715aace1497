using System.Buffers.Binary;

namespace SpecLog.Storage.Tests;

/// <summary>A fresh directory under the temp folder, deleted with everything in it on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "speclog-storage-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string SegmentPath(long baseIndex) => System.IO.Path.Combine(Path, baseIndex.ToString("D20") + ".seg");

    public string[] SegmentFiles() =>
        Directory.GetFiles(Path, "*.seg").OrderBy(f => f, StringComparer.Ordinal).ToArray();

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}

internal static class Data
{
    /// <summary>Deterministic payload of the given size whose bytes depend on the entry's identity.</summary>
    public static byte[] Payload(long seed, int size)
    {
        var bytes = new byte[size];
        ulong x = (ulong)seed * 0x9E3779B97F4A7C15UL + 1;
        for (int i = 0; i < size; i++)
        {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes[i] = (byte)x;
        }

        if (size >= 8)
        {
            BinaryPrimitives.WriteInt64LittleEndian(bytes, seed);
        }

        return bytes;
    }

    public static DurableLogOptions Options(TempDirectory dir, bool fsync = false, long segmentSize = 1 << 20) => new()
    {
        Directory = dir.Path,
        Fsync = fsync,
        SegmentSize = segmentSize,
    };

    /// <summary>File offset of each entry's frame when a segment holds only entries of these payload sizes.</summary>
    public static long[] FrameOffsets(IReadOnlyList<int> sizes)
    {
        var offsets = new long[sizes.Count + 1];
        for (int i = 0; i < sizes.Count; i++)
        {
            offsets[i + 1] = offsets[i] + Frame.Length(sizes[i]);
        }

        return offsets;
    }

    public static void Patch(string path, long offset, ReadOnlySpan<byte> bytes)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
        RandomAccess.Write(handle, bytes, offset);
    }

    public static void FlipByte(string path, long offset)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
        Span<byte> one = stackalloc byte[1];
        RandomAccess.Read(handle, one, offset);
        one[0] ^= 0x40;
        RandomAccess.Write(handle, one, offset);
    }

    public static void SetLength(string path, long length)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite);
        RandomAccess.SetLength(handle, length);
    }
}
