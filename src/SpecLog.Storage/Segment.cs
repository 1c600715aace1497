using Microsoft.Win32.SafeHandles;

namespace SpecLog.Storage;

/// <summary>
/// One segment file: entries [BaseIndex, EndIndex) stored in frames from offset 0. It keeps a sparse index with the
/// file offset of every 64th entry (counted from BaseIndex); the index of a closed segment may be dropped to bound
/// memory and is rebuilt by a scan on the next read.
/// </summary>
internal sealed class Segment : IDisposable
{
    public const int SparseShift = 6;
    public const int SparseMask = (1 << SparseShift) - 1;

    private long[]? _points;
    private int _pointCount;
    private long _endIndex;
    private long _dataEnd;

    public Segment(long baseIndex, string path, SafeFileHandle handle, long capacity)
    {
        BaseIndex = baseIndex;
        Path = path;
        Handle = handle;
        Capacity = capacity;
        _endIndex = baseIndex;
        _points = new long[16];
    }

    public long BaseIndex { get; }

    public string Path { get; }

    public SafeFileHandle Handle { get; }

    /// <summary>Bytes available for frames; only the writer thread changes it.</summary>
    public long Capacity { get; set; }

    /// <summary>Entries [BaseIndex, EndIndex) have been written to the file.</summary>
    public long EndIndex
    {
        get => Volatile.Read(ref _endIndex);
        set => Volatile.Write(ref _endIndex, value);
    }

    /// <summary>Offset just past the last frame written.</summary>
    public long DataEnd
    {
        get => Volatile.Read(ref _dataEnd);
        set => Volatile.Write(ref _dataEnd, value);
    }

    /// <summary>Records the offset of entry BaseIndex + 64 * k for the next k.</summary>
    public void AddPoint(long offset)
    {
        lock (this)
        {
            if (_points is null)
            {
                return;
            }

            if (_pointCount == _points.Length)
            {
                Array.Resize(ref _points, _points.Length * 2);
            }

            _points[_pointCount++] = offset;
        }
    }

    /// <summary>Finds the nearest sparse point at or before <paramref name="index"/>; false if the sparse index was dropped.</summary>
    public bool TryGetPoint(long index, out long pointIndex, out long offset)
    {
        lock (this)
        {
            long slot = (index - BaseIndex) >> SparseShift;
            if (_points is null || slot >= _pointCount)
            {
                pointIndex = 0;
                offset = 0;
                return false;
            }

            pointIndex = BaseIndex + (slot << SparseShift);
            offset = _points[slot];
            return true;
        }
    }

    public bool HasSparseIndex
    {
        get
        {
            lock (this)
            {
                return _points is not null;
            }
        }
    }

    public void SetSparseIndex(long[] points, int count)
    {
        lock (this)
        {
            _points = points;
            _pointCount = count;
        }
    }

    public void DropSparseIndex()
    {
        lock (this)
        {
            _points = null;
            _pointCount = 0;
        }
    }

    public void Dispose() => Handle.Dispose();
}
