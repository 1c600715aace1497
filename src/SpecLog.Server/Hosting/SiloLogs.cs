using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using SpecLog.Storage;

namespace SpecLog.Server.Hosting;

/// <summary>
/// The durable logs grains on this silo have open, and, with <see cref="SpecLogOptions.SharedGroupCommit"/> on, the
/// silo's shared group commit (<see cref="CommitJournal"/>, under <c>journal/</c> in the data directory) that makes them
/// durable with one fdatasync for all. Grains close their
/// log when they deactivate; whatever is still open when the silo's services are disposed (a silo stopped without
/// deactivating its grains) is closed then, so its file lock is released as it would be when a process exits and
/// another silo can take the grain over.
/// </summary>
internal class SiloLogs(IOptions<SpecLogOptions> options) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<DurableLog, byte> _open = new();
    private readonly object _journalGate = new();
    private readonly string _journalRoot = Path.Combine(options.Value.DataDirectory, "journal");
    private readonly bool _shared = options.Value.SharedGroupCommit && options.Value.Fsync;
    private CommitJournal? _journal;

    /// <summary>
    /// Opens (or creates) a log and tracks it; with the shared group commit on, journals that crashed processes left
    /// behind are replayed first, so the log is complete when it opens. Virtual so tests can make a volume unavailable.
    /// </summary>
    public virtual DurableLog Open(DurableLogOptions options, bool journaled = true)
    {
        if (_shared && options.Fsync && journaled)
        {
            options.Journal = Journal();
        }

        var log = DurableLog.Open(options);
        _open[log] = 0;
        return log;
    }

    /// <summary>
    /// Opens a log on a dedicated thread: opening creates and fsyncs files and may recover a long log, and grains
    /// activating at once must not tie up the thread pool with that blocking I/O (on two cores they starved it).
    /// </summary>
    public Task<DurableLog> OpenAsync(DurableLogOptions options, bool journaled = true) =>
        Task.Factory.StartNew(() => Open(options, journaled), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>Closes a log opened here, blocking the calling thread (never call it on a grain's own thread: the close is awaited elsewhere).</summary>
    public void Close(DurableLog log)
    {
        _open.TryRemove(log, out _);
        log.Dispose();
    }

    /// <summary>Closes a log opened here (flushes, seals, syncs its own files, releases its lock).</summary>
    public async ValueTask CloseAsync(DurableLog log)
    {
        _open.TryRemove(log, out _);
        await log.DisposeAsync();
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        foreach (var log in _open.Keys)
        {
            await CloseAsync(log);
        }

        lock (_journalGate)
        {
            _journal?.Dispose();
        }
    }

    private CommitJournal Journal()
    {
        lock (_journalGate)
        {
            if (_journal is null)
            {
                _journal = CommitJournal.Open(_journalRoot);
            }
            else
            {
                // Another process that shared this data directory may have died since (its logs may move here).
                CommitJournal.ReplayOrphans(_journalRoot);
            }

            return _journal;
        }
    }
}
