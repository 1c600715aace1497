using System.Buffers;
using Microsoft.Win32.SafeHandles;

namespace SpecLog.Storage;

/// <summary>Reads a file through a pooled window so that walking consecutive frames costs one pread per chunk.</summary>
internal sealed class ChunkReader : IDisposable
{
    private readonly SafeFileHandle _handle;
    private readonly long _limit;
    private byte[] _buffer;
    private long _windowStart;
    private int _windowLength;

    /// <param name="handle">File to read.</param>
    /// <param name="limit">Reads never go past this offset.</param>
    /// <param name="chunkSize">Preferred bytes per read.</param>
    public ChunkReader(SafeFileHandle handle, long limit, int chunkSize)
    {
        _handle = handle;
        _limit = limit;
        _buffer = ArrayPool<byte>.Shared.Rent(chunkSize);
    }

    /// <summary>Returns the bytes [offset, offset + count); throws <see cref="EndOfStreamException"/> if the file is shorter.</summary>
    public ReadOnlySpan<byte> Get(long offset, int count)
    {
        if (offset >= _windowStart && offset + count <= _windowStart + _windowLength)
        {
            return _buffer.AsSpan((int)(offset - _windowStart), count);
        }

        if (count > _buffer.Length)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = ArrayPool<byte>.Shared.Rent(count);
        }

        int want = (int)Math.Min(_buffer.Length, _limit - offset);
        int total = 0;
        while (total < want)
        {
            int n = RandomAccess.Read(_handle, _buffer.AsSpan(total, want - total), offset + total);
            if (n == 0)
            {
                break;
            }

            total += n;
        }

        _windowStart = offset;
        _windowLength = total;
        if (total < count)
        {
            _windowLength = 0;
            throw new EndOfStreamException($"Expected {count} bytes at offset {offset} but the file ends earlier.");
        }

        return _buffer.AsSpan(0, count);
    }

    public void Dispose()
    {
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = [];
    }
}
