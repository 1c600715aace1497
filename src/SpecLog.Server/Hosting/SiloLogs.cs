using System.Collections.Concurrent;
using SpecLog.Storage;

namespace SpecLog.Server.Hosting;

/// <summary>
/// The durable logs grains on this silo have open. Grains close their log when they deactivate; whatever is still open
/// when the silo's services are disposed (a silo stopped without deactivating its grains) is closed then, so its file
/// lock is released as it would be when a process exits and another silo can take the grain over.
/// </summary>
internal class SiloLogs : IAsyncDisposable
{
    private readonly ConcurrentDictionary<DurableLog, byte> _open = new();

    /// <summary>Opens (or creates) a log and tracks it. Virtual so tests can make a volume unavailable.</summary>
    public virtual DurableLog Open(DurableLogOptions options)
    {
        var log = DurableLog.Open(options);
        _open[log] = 0;
        return log;
    }

    /// <summary>
    /// Opens a log on a dedicated thread: opening creates and fsyncs files and may recover a long log, and grains
    /// activating at once must not tie up the thread pool with that blocking I/O (on two cores they starved it).
    /// </summary>
    public Task<DurableLog> OpenAsync(DurableLogOptions options) =>
        Task.Factory.StartNew(() => Open(options), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>Closes a log opened here (flushes, seals, releases its lock).</summary>
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
    }
}
