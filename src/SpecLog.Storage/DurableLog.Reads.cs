using System.Diagnostics;
using Microsoft.Win32.SafeHandles;

namespace SpecLog.Storage;

/// <summary>The log's read side: entries from the write buffers or CRC-checked from the segment files, located through per-segment sparse indexes.</summary>
public sealed partial class DurableLog
{
    private IReadOnlyList<StoredEntry> ReadCore(long fromIndex, int maxEntries, int maxBytes, bool strict)
    {
        var result = new List<StoredEntry>(Math.Min(maxEntries, 64));
        long bytes = 0;
        while (true)
        {
            long next = fromIndex + result.Count;
            long written;
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (result.Count == 0)
                {
                    if (fromIndex < FirstIndex || (strict && fromIndex >= _nextIndex))
                    {
                        throw new ArgumentOutOfRangeException(
                            nameof(fromIndex), fromIndex, $"The log holds entries [{FirstIndex}, {_nextIndex}).");
                    }
                }

                if (next >= _nextIndex)
                {
                    return result;
                }

                if (next >= _writtenIndex)
                {
                    CopyFromBuffers(next, maxEntries, maxBytes, result, ref bytes);
                    return result;
                }

                written = _writtenIndex;
            }

            if (ReadFromDisk(next, written, maxEntries, maxBytes, result, ref bytes) || result.Count >= maxEntries)
            {
                return result;
            }
        }
    }

    private void CopyFromBuffers(long next, int maxEntries, int maxBytes, List<StoredEntry> result, ref long bytes)
    {
        while (result.Count < maxEntries && next < _nextIndex)
        {
            WriteBuffer buffer = _inflight is not null && _inflight.Contains(next) ? _inflight : _active;
            int offset = buffer.OffsetOf(next);
            while (result.Count < maxEntries && buffer.Contains(next))
            {
                ReadOnlySpan<byte> header = buffer.Data.AsSpan(offset, Frame.HeaderSize);
                int length = (int)Frame.PayloadLength(header);
                if (result.Count > 0 && bytes + length > maxBytes)
                {
                    return;
                }

                byte[] payload = buffer.Data.AsSpan(offset + Frame.HeaderSize, length).ToArray();
                result.Add(new StoredEntry(next, Frame.Kind(header), payload));
                bytes += length;
                offset += Frame.Length(length);
                next++;
            }
        }
    }

    /// <summary>Appends entries [next, written) from the segment files to the result; returns true when maxBytes stopped it.</summary>
    private bool ReadFromDisk(long next, long written, int maxEntries, int maxBytes, List<StoredEntry> result, ref long bytes)
    {
        _segmentGate.EnterReadLock();
        try
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed), this);
            if (next < FirstIndex)
            {
                throw new ArgumentOutOfRangeException(nameof(next), next, $"Entries below {FirstIndex} have been trimmed.");
            }

            return ReadFromDiskLocked(next, written, maxEntries, maxBytes, result, ref bytes);
        }
        finally
        {
            _segmentGate.ExitReadLock();
        }
    }

    private bool ReadFromDiskLocked(long next, long written, int maxEntries, int maxBytes, List<StoredEntry> result, ref long bytes)
    {
        while (next < written && result.Count < maxEntries)
        {
            Segment segment = FindSegment(next);
            long end = Math.Min(segment.EndIndex, written);
            if (end <= next)
            {
                throw new InvalidOperationException($"Entry {next} should be on disk but no segment holds it (segment {segment.Path} ends at {segment.EndIndex}).");
            }

            (long current, long offset) = FindPoint(segment, next);
            using var reader = new ChunkReader(segment.Handle, long.MaxValue, ReadChunk);
            while (current < end && result.Count < maxEntries)
            {
                ReadOnlySpan<byte> header = reader.Get(offset, Frame.HeaderSize);
                long frameLength = Frame.CheckHeader(header, long.MaxValue);
                if (frameLength < 0 || frameLength > int.MaxValue)
                {
                    throw Corrupt(segment, offset, current);
                }

                if (Frame.IsSeal(header))
                {
                    offset += frameLength;
                    continue;
                }

                if (Frame.Index(header) != current)
                {
                    throw Corrupt(segment, offset, current);
                }

                if (current >= next)
                {
                    int length = (int)Frame.PayloadLength(header);
                    if (result.Count > 0 && bytes + length > maxBytes)
                    {
                        return true;
                    }

                    ReadOnlySpan<byte> frame = reader.Get(offset, (int)frameLength);
                    if (!Frame.CrcMatches(frame))
                    {
                        throw Corrupt(segment, offset, current);
                    }

                    result.Add(new StoredEntry(current, frame[4], frame.Slice(Frame.HeaderSize, length).ToArray()));
                    bytes += length;
                    next = current + 1;
                }

                offset += frameLength;
                current++;
            }
        }

        return false;
    }

    private static InvalidDataException Corrupt(Segment segment, long offset, long index) =>
        new($"Entry {index} in {segment.Path} at offset {offset} is damaged (bad header, index or CRC).");

    private Segment FindSegment(long index)
    {
        Segment[] segments = _segments;
        int lo = 0;
        int hi = segments.Length - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) >> 1;
            if (segments[mid].BaseIndex <= index)
            {
                lo = mid;
            }
            else
            {
                hi = mid - 1;
            }
        }

        return segments[lo];
    }

    private (long Index, long Offset) FindPoint(Segment segment, long index)
    {
        long pointIndex;
        long offset;
        if (!segment.TryGetPoint(index, out pointIndex, out offset))
        {
            // Evicted (or never built): rebuild it and answer from the rebuilt copy, since another reader may evict
            // it again before this one looks it up.
            (long[] points, int count) = BuildSparseIndex(segment);
            long slot = (index - segment.BaseIndex) >> Segment.SparseShift;
            if (slot < 0 || slot >= count)
            {
                throw new InvalidDataException($"Entry {index} is not in {segment.Path}, which holds [{segment.BaseIndex}, {segment.EndIndex}).");
            }

            pointIndex = segment.BaseIndex + (slot << Segment.SparseShift);
            offset = points[slot];
            segment.SetSparseIndex(points, count);
        }

        if (segment != _segments[^1])
        {
            TouchSparse(segment);
        }

        return (pointIndex, offset);
    }

    private static (long[] Points, int Count) BuildSparseIndex(Segment segment)
    {
        long end = segment.EndIndex;
        var points = new long[Math.Max(16, (int)((end - segment.BaseIndex) >> Segment.SparseShift) + 1)];
        int count = 0;
        long current = segment.BaseIndex;
        long offset = 0;
        using (var reader = new ChunkReader(segment.Handle, long.MaxValue, 4 << 20))
        {
            while (current < end)
            {
                ReadOnlySpan<byte> header = reader.Get(offset, Frame.HeaderSize);
                long frameLength = Frame.CheckHeader(header, long.MaxValue);
                if (frameLength < 0)
                {
                    throw Corrupt(segment, offset, current);
                }

                if (!Frame.IsSeal(header))
                {
                    if (Frame.Index(header) != current)
                    {
                        throw Corrupt(segment, offset, current);
                    }

                    if (((current - segment.BaseIndex) & Segment.SparseMask) == 0)
                    {
                        points[count++] = offset;
                    }

                    current++;
                }

                offset += frameLength;
            }
        }

        return (points, count);
    }

    /// <summary>Marks a closed segment's sparse index as recently used and drops the least recently used ones beyond the cache size.</summary>
    private void TouchSparse(Segment segment)
    {
        lock (_sparseLru)
        {
            LinkedListNode<Segment>? node = _sparseLru.Find(segment);
            if (node is not null)
            {
                if (node != _sparseLru.First)
                {
                    _sparseLru.Remove(node);
                    _sparseLru.AddFirst(node);
                }

                return;
            }

            _sparseLru.AddFirst(segment);
            while (_sparseLru.Count > _options.SparseIndexCacheSegments)
            {
                Segment evicted = _sparseLru.Last!.Value;
                _sparseLru.RemoveLast();
                evicted.DropSparseIndex();
            }
        }
    }
}
