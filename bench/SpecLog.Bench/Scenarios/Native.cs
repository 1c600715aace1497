using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace SpecLog.Bench.Scenarios;

/// <summary>The raw libc calls the baseline measurements use (Linux only).</summary>
internal static partial class Native
{
    [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    private static partial int FdatasyncNative(int fd);

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    private static partial int FallocateNative(int fd, int mode, long offset, long length);

    [LibraryImport("libc", EntryPoint = "sync")]
    private static partial void SyncNative();

    /// <summary>Flushes all file systems (sync(2)) so that one measurement's leftover writeback does not disturb the next.</summary>
    public static void SyncAll()
    {
        if (OperatingSystem.IsLinux())
        {
            SyncNative();
        }
    }

    public static void Fdatasync(SafeFileHandle handle)
    {
        if (FdatasyncNative((int)handle.DangerousGetHandle()) != 0)
        {
            throw new IOException($"fdatasync failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    public static void Fallocate(SafeFileHandle handle, long length)
    {
        if (FallocateNative((int)handle.DangerousGetHandle(), 0, 0, length) != 0)
        {
            throw new IOException($"fallocate failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }
}
