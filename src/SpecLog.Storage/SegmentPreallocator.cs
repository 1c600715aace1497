using Microsoft.Win32.SafeHandles;

namespace SpecLog.Storage;

/// <summary>
/// Prepares the next segment file on a dedicated background thread (zero-filled or fallocated, then fsynced) under a
/// temporary name, so that rolling to a new segment costs only a rename and a directory fsync on the writer thread.
/// </summary>
internal sealed class SegmentPreallocator : IDisposable
{
    private static readonly byte[] s_zeros = new byte[1 << 20];

    private readonly string _directory;
    private readonly long _size;
    private readonly SegmentPreallocation _mode;
    private readonly bool _fsync;
    private readonly object _gate = new();
    private Thread? _thread;
    private SpareFile? _ready;
    private bool _requested;
    private bool _stopping;
    private Exception? _error;
    private int _counter;

    public SegmentPreallocator(string directory, long size, SegmentPreallocation mode, bool fsync)
    {
        _directory = directory;
        _size = size;
        _mode = mode;
        _fsync = fsync;
    }

    /// <summary>A prepared file under a temporary name.</summary>
    public sealed record SpareFile(string Path, SafeFileHandle Handle, long Size);

    /// <summary>Creates a segment file of <paramref name="size"/> bytes prepared as <paramref name="mode"/> says.</summary>
    public static SafeFileHandle CreateFile(string path, long size, SegmentPreallocation mode, bool fsync)
    {
        SafeFileHandle handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read);
        try
        {
            switch (mode)
            {
                case SegmentPreallocation.ZeroFill:
                    for (long offset = 0; offset < size; offset += s_zeros.Length)
                    {
                        int n = (int)Math.Min(s_zeros.Length, size - offset);
                        RandomAccess.Write(handle, s_zeros.AsSpan(0, n), offset);
                    }

                    break;
                case SegmentPreallocation.Fallocate:
                    NativeMethods.Fallocate(handle, size);
                    break;
                default:
                    break;
            }

            if (fsync)
            {
                NativeMethods.Fsync(handle);
            }

            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Asks the background thread to prepare a spare if none is ready or under way.</summary>
    public void Request()
    {
        if (_mode == SegmentPreallocation.None)
        {
            return;
        }

        lock (_gate)
        {
            if (_ready is not null || _requested || _stopping)
            {
                return;
            }

            _requested = true;
            if (_thread is null)
            {
                _thread = new Thread(Run) { IsBackground = true, Name = "SpecLog.Storage segment preallocator" };
                _thread.Start();
            }

            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Takes the prepared spare, waiting for it if it is still being prepared.</summary>
    public SpareFile Take()
    {
        if (_mode == SegmentPreallocation.None)
        {
            string path = NextPath();
            return new SpareFile(path, CreateFile(path, 0, _mode, _fsync), 0);
        }

        Request();
        lock (_gate)
        {
            while (_ready is null)
            {
                if (_error is not null)
                {
                    Exception error = _error;
                    _error = null;
                    throw new IOException("Preparing the next segment file failed.", error);
                }

                if (!_requested && !_stopping)
                {
                    _requested = true;
                    Monitor.PulseAll(_gate);
                }

                ObjectDisposedException.ThrowIf(_stopping, this);
                Monitor.Wait(_gate);
            }

            SpareFile spare = _ready;
            _ready = null;
            return spare;
        }
    }

    public void Dispose()
    {
        Thread? thread;
        lock (_gate)
        {
            _stopping = true;
            thread = _thread;
            Monitor.PulseAll(_gate);
        }

        thread?.Join();
        lock (_gate)
        {
            if (_ready is not null)
            {
                _ready.Handle.Dispose();
                TryDelete(_ready.Path);
                _ready = null;
            }
        }
    }

    private string NextPath() =>
        System.IO.Path.Combine(_directory, $"spare-{Environment.ProcessId}-{Interlocked.Increment(ref _counter)}.tmp");

    private void Run()
    {
        while (true)
        {
            lock (_gate)
            {
                while (!_requested && !_stopping)
                {
                    Monitor.Wait(_gate);
                }

                if (_stopping)
                {
                    return;
                }
            }

            string path = NextPath();
            SpareFile? spare = null;
            Exception? error = null;
            try
            {
                spare = new SpareFile(path, CreateFile(path, _size, _mode, _fsync), _size);
            }
            catch (Exception ex)
            {
                TryDelete(path);
                error = ex;
            }

            lock (_gate)
            {
                _requested = false;
                if (_stopping && spare is not null)
                {
                    spare.Handle.Dispose();
                    TryDelete(spare.Path);
                    spare = null;
                }

                _ready = spare;
                _error = error;
                Monitor.PulseAll(_gate);
            }
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
