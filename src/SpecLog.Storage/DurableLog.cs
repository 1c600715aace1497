using System.Diagnostics;
using Microsoft.Win32.SafeHandles;

namespace SpecLog.Storage;

/// <summary>
/// A durable append-only log of numbered entries stored in segment files, with group commit: appends are copied into
/// an in-memory buffer and a dedicated writer thread writes and fdatasyncs everything pending in one go whenever a
/// flush is requested. One instance owns its directory exclusively.
/// </summary>
public sealed partial class DurableLog : IAsyncDisposable, IDisposable
{
    private const int InitialBufferSize = 1 << 20;
    private const int MaxRetainedBufferSize = 16 << 20;
    private const int ReadChunk = 64 << 10;
    private const string LockFileName = "LOCK";
    private const long FirstSegmentSize = 4 << 20;

    private readonly DurableLogOptions _options;
    private readonly string _directory;
    private readonly object _lock = new();
    private readonly Thread _writer;
    private readonly TaskCompletionSource _writerExited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SegmentPreallocator _preallocator;
    private readonly SafeFileHandle _lockFile;
    private readonly object _segmentsLock = new();
    private readonly ReaderWriterLockSlim _segmentGate = new(LockRecursionPolicy.NoRecursion);
    private readonly LinkedList<Segment> _sparseLru = new();

    // Guarded by _lock.
    private WriteBuffer _active;
    private WriteBuffer? _inflight;
    private WriteBuffer? _spareBuffer;
    private long _nextIndex;
    private long _writtenIndex;
    private long _durableIndex;
    private TaskCompletionSource<long>? _pendingFlush;
    private int _pendingWaiters;
    private volatile bool _flushRequested;
    private long _flushRequestedAt;
    private TaskCompletionSource<long>? _inflightFlush;
    private long _inflightEnd;
    private bool _disposed;
    private bool _crashed;
    private Exception? _failure;

    // Owned by the writer thread (and by the constructor before it starts).
    private Segment _current;
    private long _currentOffset;
    private long _syncedIndex;

    private volatile Segment[] _segments;
    private long _flushCount;

    private DurableLog(DurableLogOptions options, SafeFileHandle lockFile, LogRecovery.Result recovered)
    {
        _options = options;
        _directory = options.Directory;
        _lockFile = lockFile;
        _preallocator = new SegmentPreallocator(_directory, options.SegmentSize, options.Preallocation, options.Fsync);

        List<Segment> segments = recovered.Segments;
        if (segments.Count == 0)
        {
            // A new log starts with a small first segment so that Open stays fast and idle logs stay small; the
            // following segments are full-sized and prepared in the background.
            long size = options.Preallocation == SegmentPreallocation.None
                ? options.SegmentSize
                : Math.Min(options.SegmentSize, FirstSegmentSize);
            string path = LogRecovery.SegmentPath(_directory, recovered.NextIndex);
            SafeFileHandle handle = SegmentPreallocator.CreateFile(path, size, options.Preallocation, options.Fsync);
            segments.Add(new Segment(recovered.NextIndex, path, handle, size));
            if (options.Fsync)
            {
                NativeMethods.FsyncDirectory(_directory);
            }
        }

        _segments = [.. segments];
        _current = segments[^1];
        _currentOffset = _current.DataEnd;
        if (options.Fsync)
        {
            // Recovered entries may still sit only in the page cache if the previous process died; make them durable
            // before anything claims they are.
            NativeMethods.Fdatasync(_current.Handle);
        }

        for (int i = 0; i < segments.Count - 1; i++)
        {
            TouchSparse(segments[i]);
        }

        _nextIndex = recovered.NextIndex;
        _writtenIndex = recovered.NextIndex;
        _durableIndex = recovered.NextIndex;
        _syncedIndex = recovered.NextIndex;
        _active = new WriteBuffer(InitialBufferSize);
        _active.Reset(_nextIndex);
        MaybeRequestSpare();

        _writer = new Thread(WriterLoop) { IsBackground = true, Name = "SpecLog.Storage writer " + _directory };
        _writer.Start();
        options.Journal?.Register(this);
    }

    /// <summary>Index that the next <see cref="Append"/> returns; entries are numbered contiguously from the first retained index.</summary>
    public long NextIndex => Volatile.Read(ref _nextIndex);

    /// <summary>Entries below this index have been written and fdatasync'd to disk (or logically flushed when <see cref="DurableLogOptions.Fsync"/> is off).</summary>
    public long DurableIndex => Volatile.Read(ref _durableIndex);

    /// <summary>Lowest index that can still be read: the first index of the oldest segment file.</summary>
    public long FirstIndex => _segments[0].BaseIndex;

    /// <summary>Number of group commits (one write plus one fdatasync shared by all waiting flushes) completed since open.</summary>
    public long FlushCount => Interlocked.Read(ref _flushCount);

    /// <summary>Number of segment files the log currently consists of.</summary>
    public int SegmentCount => _segments.Length;

    /// <summary>Opens the log in <see cref="DurableLogOptions.Directory"/>, creating it if missing or recovering it (CRC checks, torn-tail truncation) if present.</summary>
    /// <param name="options">Where and how to store the log.</param>
    /// <returns>The opened log, ready for appends at <see cref="NextIndex"/>.</returns>
    /// <exception cref="InvalidDataException">Entries that were already durable are damaged or missing; the message names the file and offset.</exception>
    /// <exception cref="IOException">Another instance holds the directory, or the file system failed.</exception>
    public static DurableLog Open(DurableLogOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var copy = new DurableLogOptions
        {
            Directory = Path.GetFullPath(options.Directory),
            SegmentSize = options.SegmentSize,
            MaxEntrySize = options.MaxEntrySize,
            Fsync = options.Fsync,
            Preallocation = options.Preallocation,
            WriteBehindThreshold = options.WriteBehindThreshold,
            SparseIndexCacheSegments = options.SparseIndexCacheSegments,
            MaxGroupCommitDelay = options.MaxGroupCommitDelay,
            WriterSpin = options.WriterSpin,
            Journal = options.Fsync ? options.Journal : null,
            TruncateFrom = options.TruncateFrom,
            StartIndex = options.StartIndex,
        };
        Directory.CreateDirectory(copy.Directory);
        SafeFileHandle lockFile = File.OpenHandle(
            Path.Combine(copy.Directory, LockFileName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        try
        {
            LogRecovery.Result recovered = LogRecovery.Run(copy);
            try
            {
                return new DurableLog(copy, lockFile, recovered);
            }
            catch
            {
                foreach (Segment segment in recovered.Segments)
                {
                    segment.Dispose();
                }

                throw;
            }
        }
        catch
        {
            lockFile.Dispose();
            throw;
        }
    }

    /// <summary>Copies one entry into the write buffer and returns its index; it becomes durable with the next completed <see cref="FlushAsync"/>. Thread-safe and never waits for I/O.</summary>
    /// <param name="kind">Application-defined kind byte stored with the entry.</param>
    /// <param name="payload">Entry bytes (may be empty), at most <see cref="DurableLogOptions.MaxEntrySize"/> long.</param>
    /// <returns>The index of the new entry.</returns>
    /// <exception cref="ArgumentException">The payload is longer than <see cref="DurableLogOptions.MaxEntrySize"/>.</exception>
    /// <exception cref="ObjectDisposedException">The log has been disposed.</exception>
    /// <exception cref="IOException">An earlier write or fdatasync failed, so the log accepts nothing more.</exception>
    public long Append(byte kind, ReadOnlySpan<byte> payload)
    {
        if (payload.Length > _options.MaxEntrySize)
        {
            throw new ArgumentException(
                $"Payload of {payload.Length} bytes exceeds MaxEntrySize ({_options.MaxEntrySize}).", nameof(payload));
        }

        int frameLength = Frame.Length(payload.Length);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ThrowIfFailed();
            long index = _nextIndex;
            WriteBuffer buffer = _active;
            int before = buffer.Length;
            Frame.WriteUnsealed(buffer.Reserve(frameLength), index, kind, 0, payload);
            Volatile.Write(ref _nextIndex, index + 1);
            if (before < _options.WriteBehindThreshold && buffer.Length >= _options.WriteBehindThreshold)
            {
                Monitor.Pulse(_lock);
            }

            return index;
        }
    }

    /// <summary>Completes once every entry appended before the call is durable; concurrent callers share one write and fdatasync.</summary>
    /// <param name="ct">Cancels only this caller's wait, not the flush itself.</param>
    /// <returns>The <see cref="DurableIndex"/> reached by the flush that covered this call.</returns>
    /// <exception cref="ObjectDisposedException">The log was disposed with entries still not durable.</exception>
    /// <exception cref="IOException">The write or fdatasync failed.</exception>
    public ValueTask<long> FlushAsync(CancellationToken ct = default)
    {
        TaskCompletionSource<long> flush;
        lock (_lock)
        {
            ThrowIfFailed();
            long target = _nextIndex;
            if (target <= _durableIndex)
            {
                return new ValueTask<long>(_durableIndex);
            }

            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_inflightFlush is not null && target <= _inflightEnd)
            {
                flush = _inflightFlush;
            }
            else
            {
                if (_pendingFlush is null)
                {
                    _pendingFlush = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
                    _flushRequestedAt = Stopwatch.GetTimestamp();
                    _flushRequested = true;
                    Monitor.Pulse(_lock);
                }

                flush = _pendingFlush;
                Volatile.Write(ref _pendingWaiters, _pendingWaiters + 1);
            }
        }

        return ct.CanBeCanceled ? new ValueTask<long>(flush.Task.WaitAsync(ct)) : new ValueTask<long>(flush.Task);
    }

    /// <summary>Reads one entry, from the unflushed buffer or from disk.</summary>
    /// <param name="index">Index of the entry, at least <see cref="FirstIndex"/> and below <see cref="NextIndex"/>.</param>
    /// <returns>The entry with a private copy of its payload.</returns>
    /// <exception cref="ArgumentOutOfRangeException">The index is not in the log.</exception>
    /// <exception cref="InvalidDataException">The entry's frame on disk fails its CRC check.</exception>
    public StoredEntry Read(long index)
    {
        IReadOnlyList<StoredEntry> entries = ReadCore(index, 1, int.MaxValue, strict: true);
        return entries[0];
    }

    /// <summary>Reads consecutive entries starting at <paramref name="fromIndex"/>: at least one if it is below <see cref="NextIndex"/>, none if it is not.</summary>
    /// <param name="fromIndex">Index of the first entry to read, at least <see cref="FirstIndex"/>.</param>
    /// <param name="maxEntries">Most entries to return (at least 1).</param>
    /// <param name="maxBytes">Stop before the payload bytes would exceed this, except that the first entry is always returned.</param>
    /// <returns>Entries fromIndex, fromIndex + 1, ... in order.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="fromIndex"/> is below <see cref="FirstIndex"/>, or <paramref name="maxEntries"/> is below 1.</exception>
    public IReadOnlyList<StoredEntry> ReadRange(long fromIndex, int maxEntries, int maxBytes = 1 << 20)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEntries, 1);
        return ReadCore(fromIndex, maxEntries, maxBytes, strict: false);
    }

    /// <summary>
    /// Deletes the oldest segment files whose entries all lie below <paramref name="index"/>; the segment being written is
    /// never deleted, so entries at or above the returned <see cref="FirstIndex"/> stay readable.
    /// </summary>
    /// <param name="index">Entries below this index are no longer needed.</param>
    /// <returns>The new <see cref="FirstIndex"/>, which is at most <paramref name="index"/> (rounded down to a segment start).</returns>
    public long TrimBefore(long index)
    {
        List<Segment> removed = [];
        _segmentGate.EnterWriteLock();
        try
        {
            lock (_lock)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
            }

            lock (_segmentsLock)
            {
                Segment[] segments = _segments;
                int keepFrom = 0;
                while (keepFrom < segments.Length - 1 && segments[keepFrom + 1].BaseIndex <= index)
                {
                    keepFrom++;
                }

                if (keepFrom == 0)
                {
                    return segments[0].BaseIndex;
                }

                removed.AddRange(segments[..keepFrom]);
                _segments = segments[keepFrom..];
            }

            lock (_sparseLru)
            {
                foreach (Segment segment in removed)
                {
                    _sparseLru.Remove(segment);
                }
            }

            // Oldest first, so a crash part-way leaves a contiguous log.
            foreach (Segment segment in removed)
            {
                segment.Dispose();
                File.Delete(segment.Path);
            }
        }
        finally
        {
            _segmentGate.ExitWriteLock();
        }

        if (_options.Fsync)
        {
            NativeMethods.FsyncDirectory(_directory);
        }

        return FirstIndex;
    }

    /// <summary>Flushes pending entries, writes a seal frame, stops the writer thread and closes the files; waits synchronously.</summary>
    public void Dispose()
    {
        if (!BeginDispose())
        {
            return;
        }

        _writer.Join();
        Cleanup();
    }

    /// <summary>Flushes pending entries, writes a seal frame, stops the writer thread and closes the files without blocking a thread.</summary>
    /// <returns>A task that completes when the log is closed.</returns>
    public async ValueTask DisposeAsync()
    {
        if (!BeginDispose())
        {
            return;
        }

        await _writerExited.Task.ConfigureAwait(false);
        _writer.Join();
        Cleanup();
    }

    /// <summary>
    /// Test hook that imitates a process crash: the writer thread stops without writing pending entries or a seal frame,
    /// and the files are closed. Entries already written stay in the files (and the page cache) as after a real crash.
    /// </summary>
    internal void SimulateCrash()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _crashed = true;
            Monitor.Pulse(_lock);
        }

        _writer.Join();
        Cleanup();
    }

    private bool BeginDispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return false;
            }

            _disposed = true;
            Monitor.Pulse(_lock);
            return true;
        }
    }

    /// <summary>
    /// Fdatasyncs the segment being written (a journal checkpoint, called from another log's writer thread): every frame
    /// this log journaled was written to its own files first, and segments before the last were synced when they rolled.
    /// </summary>
    internal void SyncOwnFiles()
    {
        lock (_segmentsLock)
        {
            try
            {
                NativeMethods.Fdatasync(_segments[^1].Handle);
            }
            catch (ObjectDisposedException)
            {
                // Closed meanwhile: it synced as it closed.
            }
        }
    }

    private void Cleanup()
    {
        _options.Journal?.Unregister(this);
        _preallocator.Dispose();
        _segmentGate.EnterWriteLock();
        try
        {
            lock (_segmentsLock)
            {
                foreach (Segment segment in _segments)
                {
                    segment.Dispose();
                }
            }
        }
        finally
        {
            _segmentGate.ExitWriteLock();
        }

        _lockFile.Dispose();
    }

    private void ThrowIfFailed()
    {
        if (_failure is not null)
        {
            throw new IOException("The log failed to write or sync earlier and accepts no more work.", _failure);
        }
    }
}
