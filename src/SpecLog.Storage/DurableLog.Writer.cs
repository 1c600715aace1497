using System.Diagnostics;
using Microsoft.Win32.SafeHandles;

namespace SpecLog.Storage;

/// <summary>The log's writer thread: group commit (write and fdatasync everything pending at once), segment rolls and seals.</summary>
public sealed partial class DurableLog
{
    private void WriterLoop()
    {
        long groupDelayCap = (long)(_options.MaxGroupCommitDelay.TotalSeconds * Stopwatch.Frequency);
        long spinTicks = (long)(_options.WriterSpin.TotalSeconds * Stopwatch.Frequency);
        bool committed = false;
        long committedAt = 0;
        long lastGap = long.MaxValue;
        int lastWaiters = 0;
        int pendingAtRelease = 0;
        long lastCycleTicks = 0;
        try
        {
            while (true)
            {
                WriteBuffer? batch;
                TaskCompletionSource<long>? flush;
                bool sync;
                bool last;
                long end;
                int target = 0;
                long deadline = 0;
                if (committed && spinTicks > 0 && lastGap <= spinTicks)
                {
                    // A producer that was just released usually flushes again within tens of microseconds: watch for
                    // it briefly instead of going to sleep and paying a wake-up on the critical path. Only done while
                    // the previous gap between a commit and the next flush request was that short, so an idle or
                    // slowly flushing log does not burn CPU.
                    long spinEnd = Stopwatch.GetTimestamp() + spinTicks;
                    while (!_flushRequested && Stopwatch.GetTimestamp() < spinEnd)
                    {
                        Thread.SpinWait(20);
                    }
                }

                lock (_lock)
                {
                    while (_pendingFlush is null && !_disposed && _active.Length < _options.WriteBehindThreshold)
                    {
                        Monitor.Wait(_lock);
                    }

                    if (committed)
                    {
                        // Time from the last commit to the next flush request (not to this thread waking up).
                        lastGap = _pendingFlush is not null ? _flushRequestedAt - committedAt : long.MaxValue;
                        committed = false;
                    }

                    if (_pendingFlush is not null && !_disposed && lastWaiters > 1 && groupDelayCap > 0)
                    {
                        // Closed-loop producers: the flushers released by the previous commit are about to append
                        // again. Give them a moment (bounded by a fraction of the last commit's duration) so that
                        // one fdatasync covers them and the ones already waiting, instead of alternating halves.
                        target = pendingAtRelease + lastWaiters;
                        deadline = Stopwatch.GetTimestamp() + Math.Min(groupDelayCap, lastCycleTicks / 2);
                    }
                }

                if (target > 0)
                {
                    while (Volatile.Read(ref _pendingWaiters) < target && Stopwatch.GetTimestamp() < deadline)
                    {
                        Thread.Yield();
                    }
                }

                long cycleStart = Stopwatch.GetTimestamp();
                int waiters;
                lock (_lock)
                {
                    if (_crashed)
                    {
                        _pendingFlush?.TrySetException(new ObjectDisposedException(nameof(DurableLog)));
                        _pendingFlush = null;
                        return;
                    }

                    last = _disposed;
                    end = _nextIndex;
                    flush = _pendingFlush;
                    _pendingFlush = null;
                    _flushRequested = false;
                    waiters = _pendingWaiters;
                    _pendingWaiters = 0;
                    sync = flush is not null || last;
                    batch = null;
                    if (_active.Count > 0)
                    {
                        batch = _active;
                        _active = _spareBuffer ?? new WriteBuffer(InitialBufferSize);
                        _spareBuffer = null;
                        _active.Reset(end);
                        _inflight = batch;
                    }

                    _inflightFlush = flush;
                    _inflightEnd = end;
                }

                if (batch is not null)
                {
                    WriteBatch(batch);
                    if (_options.Journal is not null && !last)
                    {
                        // Durable through the shared journal; the own files are synced at checkpoints, rolls and close
                        // (so _syncedIndex, which frames record for recovery, stays where the own files really are).
                        _options.Journal.Commit(_directory, batch.Data.AsSpan(0, batch.Length));
                    }
                }

                if (sync)
                {
                    if (_options.Journal is null || last)
                    {
                        if (_options.Fsync && _syncedIndex < end)
                        {
                            NativeMethods.Fdatasync(_current.Handle);
                        }

                        _syncedIndex = end;
                    }

                    Interlocked.Increment(ref _flushCount);
                }

                if (last)
                {
                    WriteSeal(end);
                }

                lock (_lock)
                {
                    _writtenIndex = end;
                    if (sync)
                    {
                        Volatile.Write(ref _durableIndex, end);
                    }

                    if (batch is not null)
                    {
                        _inflight = null;
                        if (batch.Data.Length <= MaxRetainedBufferSize)
                        {
                            _spareBuffer = batch;
                        }
                    }

                    _inflightFlush = null;

                    // Flushers waiting now are not among the ones this commit releases.
                    pendingAtRelease = _pendingWaiters;
                }

                flush?.TrySetResult(end);
                committed = flush is not null;
                committedAt = Stopwatch.GetTimestamp();
                if (flush is not null)
                {
                    lastWaiters = waiters;
                    lastCycleTicks = Stopwatch.GetTimestamp() - cycleStart;
                }

                if (last)
                {
                    return;
                }
            }
        }
        catch (Exception ex)
        {
            Fail(ex);
        }
        finally
        {
            _writerExited.TrySetResult();
        }
    }

    private void Fail(Exception ex)
    {
        TaskCompletionSource<long>? pending;
        TaskCompletionSource<long>? inflight;
        lock (_lock)
        {
            _failure = ex;
            pending = _pendingFlush;
            inflight = _inflightFlush;
            _pendingFlush = null;
            _inflightFlush = null;
        }

        var error = new IOException("Writing or syncing the log failed; the log accepts no more work.", ex);
        pending?.TrySetException(error);
        inflight?.TrySetException(error);
    }

    /// <summary>Writes the frames of a batch at the end of the current segment, rolling to new segments where a frame does not fit.</summary>
    private void WriteBatch(WriteBuffer batch)
    {
        byte[] data = batch.Data;
        int length = batch.Length;
        long index = batch.FirstIndex;
        Segment segment = _current;
        long segmentOffset = _currentOffset;
        int chunkStart = 0;
        int position = 0;
        while (position < length)
        {
            int frameLength = Frame.Length((int)Frame.PayloadLength(data.AsSpan(position)));
            long at = segmentOffset + (position - chunkStart);
            if (at + frameLength > segment.Capacity && index > segment.BaseIndex)
            {
                RandomAccess.Write(segment.Handle, data.AsSpan(chunkStart, position - chunkStart), segmentOffset);
                segment.DataEnd = at;
                segment.EndIndex = index;
                segment = Roll(index, frameLength);
                segmentOffset = 0;
                chunkStart = position;
                at = 0;
            }

            Frame.Seal(data.AsSpan(position, frameLength), Frame.SyncLag(index, _syncedIndex));
            if (((index - segment.BaseIndex) & Segment.SparseMask) == 0)
            {
                segment.AddPoint(at);
            }

            position += frameLength;
            index++;
        }

        RandomAccess.Write(segment.Handle, data.AsSpan(chunkStart, position - chunkStart), segmentOffset);
        _currentOffset = segmentOffset + (position - chunkStart);
        segment.DataEnd = _currentOffset;
        segment.EndIndex = index;
        if (_currentOffset > segment.Capacity)
        {
            segment.Capacity = _currentOffset;
        }

        MaybeRequestSpare();
    }

    private void MaybeRequestSpare()
    {
        if (_currentOffset >= _current.Capacity / 2)
        {
            _preallocator.Request();
        }
    }

    /// <summary>Makes the current segment durable, then switches to a new segment whose first entry is <paramref name="baseIndex"/>.</summary>
    private Segment Roll(long baseIndex, int frameLength)
    {
        Segment old = _current;
        if (_options.Fsync)
        {
            NativeMethods.Fdatasync(old.Handle);
        }

        _syncedIndex = baseIndex;
        string path = LogRecovery.SegmentPath(_directory, baseIndex);
        Segment segment;
        if (frameLength <= _options.SegmentSize)
        {
            SegmentPreallocator.SpareFile spare = _preallocator.Take();
            try
            {
                File.Move(spare.Path, path);
            }
            catch
            {
                spare.Handle.Dispose();
                throw;
            }

            segment = new Segment(baseIndex, path, spare.Handle, Math.Max(spare.Size, _options.SegmentSize));
        }
        else
        {
            long size = (frameLength + 4095L) & ~4095L;
            segment = new Segment(baseIndex, path, SegmentPreallocator.CreateFile(path, size, _options.Preallocation, _options.Fsync), size);
        }

        if (_options.Fsync)
        {
            NativeMethods.FsyncDirectory(_directory);
        }

        lock (_segmentsLock)
        {
            _segments = [.. _segments, segment];
        }

        _current = segment;
        _currentOffset = 0;
        TouchSparse(old);
        return segment;
    }

    /// <summary>
    /// Writes a seal frame (no entry; index = next index, sync lag 0) after a clean final flush. Recovery uses it as proof
    /// that everything before it was durable, so damage to the last batch is reported instead of taken for a torn tail.
    /// </summary>
    private void WriteSeal(long nextIndex)
    {
        if (_currentOffset + Frame.HeaderSize > _current.Capacity)
        {
            return;
        }

        Span<byte> seal = stackalloc byte[Frame.HeaderSize];
        Frame.WriteUnsealed(seal, nextIndex, 0, Frame.FlagSeal, []);
        Frame.Seal(seal, 0);
        RandomAccess.Write(_current.Handle, seal, _currentOffset);
        if (_options.Fsync)
        {
            NativeMethods.Fdatasync(_current.Handle);
        }

        _currentOffset += Frame.HeaderSize;
        _current.DataEnd = _currentOffset;
    }
}
