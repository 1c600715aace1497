using System.Globalization;

namespace SpecLog.Storage;

/// <summary>
/// Scans the segment files of a log directory on open: checks every frame (header, index, CRC), repairs a torn tail and
/// refuses to open when entries that were provably durable are damaged.
/// </summary>
internal static class LogRecovery
{
    public const string SegmentExtension = ".seg";
    private const int ScanChunk = 4 << 20;
    private const int ZeroBlock = 64 << 10;

    /// <summary>What recovery found: the retained segments in order and where appending continues.</summary>
    public sealed record Result(List<Segment> Segments, long NextIndex);

    public static string SegmentPath(string directory, long baseIndex) =>
        Path.Combine(directory, baseIndex.ToString("D20", CultureInfo.InvariantCulture) + SegmentExtension);

    public static Result Run(DurableLogOptions options)
    {
        string directory = options.Directory;
        foreach (string tmp in Directory.EnumerateFiles(directory, "*.tmp"))
        {
            File.Delete(tmp);
        }

        List<(long Base, string Path)> files = [];
        foreach (string path in Directory.EnumerateFiles(directory, "*" + SegmentExtension))
        {
            string name = Path.GetFileNameWithoutExtension(path);
            if (name.Length != 20 || !long.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out long baseIndex))
            {
                throw new InvalidDataException($"Unexpected file {path} in log directory: segment files are named by their first index with 20 digits.");
            }

            files.Add((baseIndex, path));
        }

        files.Sort((a, b) => a.Base.CompareTo(b.Base));
        List<Segment> segments = [];
        if (files.Count == 0)
        {
            return new Result(segments, options.StartIndex);
        }

        try
        {
            long expected = files[0].Base;
            for (int i = 0; i < files.Count; i++)
            {
                (long baseIndex, string path) = files[i];
                if (baseIndex != expected)
                {
                    // The previous segment ended cleanly but this one does not start where it should.
                    RepairOrThrow(options, files, i, breakSegment: null, breakOffset: 0, expected);
                    return new Result(segments, expected);
                }

                var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
                long length = RandomAccess.GetLength(handle);
                // A preallocated segment is exactly as big as it was made (the first segment of a log is smaller);
                // a growing one may grow to SegmentSize.
                long capacity = options.Preallocation == SegmentPreallocation.None ? Math.Max(length, options.SegmentSize) : length;
                var segment = new Segment(baseIndex, path, handle, capacity);
                segments.Add(segment);
                long offset = ScanValidFrames(segment, length, options.TruncateFrom, ref expected);
                segment.EndIndex = expected;
                segment.DataEnd = offset;
                if (!IsZero(segment, offset, length))
                {
                    RepairOrThrow(options, files, i + 1, segment, offset, expected);
                    return new Result(segments, expected);
                }

                if (expected == options.TruncateFrom && i + 1 < files.Count)
                {
                    RepairOrThrow(options, files, i + 1, breakSegment: null, breakOffset: 0, expected);
                    return new Result(segments, expected);
                }
            }

            return new Result(segments, expected);
        }
        catch
        {
            foreach (Segment segment in segments)
            {
                segment.Dispose();
            }

            throw;
        }
    }

    /// <summary>Walks the chain of valid frames from offset 0, filling the sparse index; returns the offset where it ends.</summary>
    private static long ScanValidFrames(Segment segment, long length, long truncateFrom, ref long expected)
    {
        using var reader = new ChunkReader(segment.Handle, length, ScanChunk);
        long offset = 0;
        while (length - offset >= Frame.HeaderSize && expected < truncateFrom)
        {
            ReadOnlySpan<byte> header = reader.Get(offset, Frame.HeaderSize);
            long frameLength = Frame.CheckHeader(header, length - offset);
            if (frameLength < 0 || frameLength > int.MaxValue || Frame.Index(header) != expected)
            {
                break;
            }

            bool seal = Frame.IsSeal(header);
            if (!Frame.CrcMatches(reader.Get(offset, (int)frameLength)))
            {
                break;
            }

            if (!seal)
            {
                if (((expected - segment.BaseIndex) & Segment.SparseMask) == 0)
                {
                    segment.AddPoint(offset);
                }

                expected++;
            }

            offset += frameLength;
        }

        return offset;
    }

    /// <summary>
    /// The chain of valid frames broke with entry <paramref name="expected"/> missing. If anything after the break proves that
    /// entry was already durable, throw; otherwise the break is a torn tail: zero it, delete later segment files and return.
    /// At <see cref="DurableLogOptions.TruncateFrom"/> the break is deliberate: what follows is dropped without a check.
    /// </summary>
    private static void RepairOrThrow(
        DurableLogOptions options,
        List<(long Base, string Path)> files,
        int firstTailFile,
        Segment? breakSegment,
        long breakOffset,
        long expected)
    {
        string where = breakSegment is null
            ? $"{files[firstTailFile].Path} offset 0 (segment does not start at expected entry {expected})"
            : $"{breakSegment.Path} offset {breakOffset}";

        bool truncating = expected == options.TruncateFrom;
        long lastNonZero = breakOffset;
        if (breakSegment is not null && truncating)
        {
            FindValidFrame(breakSegment.Handle, breakOffset, RandomAccess.GetLength(breakSegment.Handle), long.MaxValue, out lastNonZero, out _);
        }
        else if (breakSegment is not null)
        {
            long length = RandomAccess.GetLength(breakSegment.Handle);
            long proof = FindValidFrame(breakSegment.Handle, breakOffset, length, expected, out lastNonZero, out long proofIndex);
            if (proof >= 0)
            {
                throw new InvalidDataException(
                    $"Log corrupted at {where}: entry {expected} is missing or damaged, but entry {proofIndex} at offset {proof} of the same file " +
                    $"was written after entry {expected} had been made durable.");
            }
        }

        for (int j = firstTailFile; j < files.Count && !truncating; j++)
        {
            using var handle = File.OpenHandle(files[j].Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            long length = RandomAccess.GetLength(handle);
            long proof = FindValidFrame(handle, 0, length, long.MinValue, out _, out long proofIndex);
            if (proof >= 0)
            {
                throw new InvalidDataException(
                    $"Log corrupted at {where}: entry {expected} is missing or damaged, but the later segment {files[j].Path} holds entry {proofIndex} at offset {proof}.");
            }
        }

        // Torn tail: nothing after the break was ever acknowledged.
        if (breakSegment is not null && lastNonZero > breakOffset)
        {
            if (options.Preallocation == SegmentPreallocation.None)
            {
                RandomAccess.SetLength(breakSegment.Handle, breakOffset);
            }
            else
            {
                ZeroRange(breakSegment, breakOffset, lastNonZero);
            }

            if (options.Fsync)
            {
                NativeMethods.Fsync(breakSegment.Handle);
            }
        }

        for (int j = firstTailFile; j < files.Count; j++)
        {
            File.Delete(files[j].Path);
        }

        if (firstTailFile < files.Count && options.Fsync)
        {
            NativeMethods.FsyncDirectory(options.Directory);
        }
    }

    /// <summary>
    /// Looks at every 8-byte aligned offset in [from, length) for a complete valid frame whose writer knew entries below
    /// a value greater than <paramref name="durableAbove"/> were durable; returns its offset or -1. Also reports where the
    /// last non-zero byte ends.
    /// </summary>
    private static long FindValidFrame(Microsoft.Win32.SafeHandles.SafeFileHandle handle, long from, long length, long durableAbove, out long lastNonZero, out long foundIndex)
    {
        lastNonZero = from;
        foundIndex = -1;
        using var reader = new ChunkReader(handle, length, ScanChunk);
        long block = from;
        while (block < length)
        {
            int blockLength = (int)Math.Min(ZeroBlock, length - block);
            ReadOnlySpan<byte> span = reader.Get(block, blockLength);
            int firstNonZero = span.IndexOfAnyExcept((byte)0);
            if (firstNonZero < 0)
            {
                block += blockLength;
                continue;
            }

            lastNonZero = Math.Max(lastNonZero, block + span.LastIndexOfAnyExcept((byte)0) + 1);
            long end = block + blockLength;
            for (long p = block + (firstNonZero & ~7); p < end && length - p >= Frame.HeaderSize; p += 8)
            {
                ReadOnlySpan<byte> header = reader.Get(p, Frame.HeaderSize);
                if (header[5] != Frame.Magic)
                {
                    continue;
                }

                long frameLength = Frame.CheckHeader(header, length - p);
                if (frameLength < 0 || frameLength > int.MaxValue || Frame.DurableAtWrite(header) <= durableAbove)
                {
                    continue;
                }

                long index = Frame.Index(header);
                if (Frame.CrcMatches(reader.Get(p, (int)frameLength)))
                {
                    foundIndex = index;
                    return p;
                }
            }

            block = end;
        }

        return -1;
    }

    private static bool IsZero(Segment segment, long from, long length)
    {
        using var reader = new ChunkReader(segment.Handle, length, ScanChunk);
        for (long block = from; block < length;)
        {
            int blockLength = (int)Math.Min(ScanChunk, length - block);
            if (reader.Get(block, blockLength).IndexOfAnyExcept((byte)0) >= 0)
            {
                return false;
            }

            block += blockLength;
        }

        return true;
    }

    private static void ZeroRange(Segment segment, long from, long to)
    {
        byte[] zeros = new byte[(int)Math.Min(1 << 20, to - from)];
        for (long offset = from; offset < to; offset += zeros.Length)
        {
            int n = (int)Math.Min(zeros.Length, to - offset);
            RandomAccess.Write(segment.Handle, zeros.AsSpan(0, n), offset);
        }
    }
}
