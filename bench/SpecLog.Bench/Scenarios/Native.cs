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

    [LibraryImport("libc", EntryPoint = "nanosleep")]
    private static partial int NanoSleepNative(in TimeSpec request, IntPtr remaining);

    /// <summary>
    /// Blocks until <paramref name="untilTimestamp"/> (a <see cref="System.Diagnostics.Stopwatch"/> timestamp) without
    /// burning a core: nanosleep until about 60 µs before, then spin the rest, so the wake-up is precise.
    /// </summary>
    public static void WaitUntil(long untilTimestamp)
    {
        var spinFrom = System.Diagnostics.Stopwatch.Frequency * 60 / 1_000_000;
        while (true)
        {
            var remaining = untilTimestamp - System.Diagnostics.Stopwatch.GetTimestamp();
            if (remaining <= 0)
            {
                return;
            }

            if (remaining <= spinFrom)
            {
                Thread.SpinWait(20);
                continue;
            }

            var nanos = (remaining - spinFrom) * 1_000_000_000 / System.Diagnostics.Stopwatch.Frequency;
            NanoSleepNative(new TimeSpec { Seconds = nanos / 1_000_000_000, Nanoseconds = nanos % 1_000_000_000 }, IntPtr.Zero);
        }
    }

    /// <summary>Sleeps about <paramref name="nanoseconds"/> (nanosleep; a 1 ms sleep off Linux), without spinning.</summary>
    public static void Nap(long nanoseconds)
    {
        if (OperatingSystem.IsLinux())
        {
            NanoSleepNative(new TimeSpec { Seconds = nanoseconds / 1_000_000_000, Nanoseconds = nanoseconds % 1_000_000_000 }, IntPtr.Zero);
        }
        else
        {
            Thread.Sleep(1);
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

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
