using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace SpecLog.Storage;

/// <summary>Durability primitives: fdatasync and directory fsync through libc on Linux, portable fallbacks elsewhere.</summary>
internal static partial class NativeMethods
{
    private const string LibC = "libc";

    [LibraryImport(LibC, EntryPoint = "fdatasync", SetLastError = true)]
    private static partial int FdatasyncNative(int fd);

    [LibraryImport(LibC, EntryPoint = "fsync", SetLastError = true)]
    private static partial int FsyncNative(int fd);

    [LibraryImport(LibC, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenNative(string path, int flags);

    [LibraryImport(LibC, EntryPoint = "close", SetLastError = true)]
    private static partial int CloseNative(int fd);

    [LibraryImport(LibC, EntryPoint = "fallocate", SetLastError = true)]
    private static partial int FallocateNative(int fd, int mode, long offset, long length);

    /// <summary>Makes the file's data (and only the metadata needed to read it back) durable.</summary>
    public static void Fdatasync(SafeFileHandle handle) => Sync(handle, FdatasyncNative, "fdatasync");

    /// <summary>Makes a file's data and all of its metadata (size, extents) durable.</summary>
    public static void Fsync(SafeFileHandle handle) => Sync(handle, FsyncNative, "fsync");

    // One call of fdatasync or fsync on the handle's descriptor, kept alive for the call; FlushToDisk off Linux.
    private static void Sync(SafeFileHandle handle, Func<int, int> sync, string name)
    {
        if (!OperatingSystem.IsLinux())
        {
            RandomAccess.FlushToDisk(handle);
            return;
        }

        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            if (sync((int)handle.DangerousGetHandle()) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                throw new IOException($"{name} failed with errno {errno}.", errno);
            }
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    /// <summary>Makes the directory's entries (file creations, renames, deletions) durable; a no-op where that is not supported.</summary>
    public static void FsyncDirectory(string directory)
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        int fd = OpenNative(directory, 0);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new IOException($"open({directory}) for directory fsync failed with errno {errno}.", errno);
        }

        try
        {
            if (FsyncNative(fd) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                throw new IOException($"fsync of directory {directory} failed with errno {errno}.", errno);
            }
        }
        finally
        {
            CloseNative(fd);
        }
    }

    /// <summary>Reserves [0, length) for the file with fallocate (extending its size); falls back to SetLength elsewhere.</summary>
    public static void Fallocate(SafeFileHandle handle, long length)
    {
        if (!OperatingSystem.IsLinux())
        {
            RandomAccess.SetLength(handle, length);
            return;
        }

        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            if (FallocateNative((int)handle.DangerousGetHandle(), 0, 0, length) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                throw new IOException($"fallocate failed with errno {errno}.", errno);
            }
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }
}
