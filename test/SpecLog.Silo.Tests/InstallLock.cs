using System.Diagnostics;

namespace SpecLog.Silo.Tests;

/// <summary>An exclusive lock on a file across processes, held while a tool the tests need (Azurite, Chromium) is installed.</summary>
internal static class InstallLock
{
    /// <summary>Takes the lock on <paramref name="path"/> (released by disposing the stream), waiting up to 10 minutes for another installer.</summary>
    public static async Task<FileStream> AcquireAsync(string path, CancellationToken cancellationToken)
    {
        var deadline = Stopwatch.GetTimestamp() + 600 * Stopwatch.Frequency;
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (Stopwatch.GetTimestamp() < deadline)
            {
                await Task.Delay(200, cancellationToken); // another process installs
            }
        }
    }
}
