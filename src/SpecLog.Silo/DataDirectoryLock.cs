namespace SpecLog.Silo;

/// <summary>
/// An exclusive lock on a file in the data directory, held for the life of the silo so that a second silo pointed at
/// the same directory fails at once instead of corrupting the logs. The operating system drops the lock when the
/// process dies, so a crashed silo never leaves a stale lock behind.
/// </summary>
internal sealed class DataDirectoryLock : IDisposable
{
    /// <summary>Name of the lock file inside the data directory.</summary>
    public const string FileName = "silo.lock";

    private readonly FileStream _file;

    private DataDirectoryLock(FileStream file) => _file = file;

    /// <summary>Creates <paramref name="directory"/> if needed and locks it; throws <see cref="IOException"/> if another process holds it.</summary>
    public static DataDirectoryLock Acquire(string directory)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, FileName);
        FileStream file;
        try
        {
            // FileShare.None takes an exclusive advisory lock (flock) on Unix and a sharing lock on Windows.
            file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new IOException($"The data directory {directory} is in use by another process (lock file {path} is held).", e);
        }

        file.SetLength(0);
        using (var writer = new StreamWriter(file, leaveOpen: true))
        {
            writer.WriteLine($"pid {Environment.ProcessId} on {Environment.MachineName} since {DateTimeOffset.UtcNow:O}");
        }

        file.Flush(flushToDisk: false);
        return new DataDirectoryLock(file);
    }

    /// <inheritdoc />
    public void Dispose() => _file.Dispose();
}
