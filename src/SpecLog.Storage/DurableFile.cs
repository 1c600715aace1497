namespace SpecLog.Storage;

/// <summary>Small files replaced atomically and durably: written to a temporary file, fsync'd, renamed over the old one, and the directory fsync'd.</summary>
public static class DurableFile
{
    /// <summary>Replaces <paramref name="path"/> with <paramref name="contents"/>; after a crash the file holds either the old or the new contents.</summary>
    /// <param name="path">The file.</param>
    /// <param name="contents">Its new contents.</param>
    /// <param name="fsync">Whether to fsync the file and its directory (off only for throwaway tests).</param>
    public static void Replace(string path, ReadOnlySpan<byte> contents, bool fsync = true)
    {
        var full = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(full) ?? throw new ArgumentException($"{path} has no directory.", nameof(path));
        var temp = full + ".new";
        using (var handle = File.OpenHandle(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            RandomAccess.Write(handle, contents, 0);
            if (fsync)
            {
                NativeMethods.Fsync(handle);
            }
        }

        File.Move(temp, full, overwrite: true);
        if (fsync)
        {
            NativeMethods.FsyncDirectory(directory);
        }
    }
}
