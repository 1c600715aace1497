namespace SpecLog.Storage;

/// <summary>How a new segment file gets its disk space before entries are written into it.</summary>
public enum SegmentPreallocation
{
    /// <summary>A background thread writes zeros over the whole next segment and fsyncs it, so appends overwrite allocated blocks and fdatasync commits no metadata.</summary>
    ZeroFill = 0,

    /// <summary>The next segment is reserved with fallocate only, so the first write to each block converts an unwritten extent and fdatasync must commit that metadata.</summary>
    Fallocate = 1,

    /// <summary>No preallocation: the segment file grows with every write, so each fdatasync also commits the new file size.</summary>
    None = 2,
}

/// <summary>Settings for opening a <see cref="DurableLog"/>.</summary>
public sealed class DurableLogOptions
{
    /// <summary>Default size of one segment file in bytes (64 MiB).</summary>
    public const long DEFAULT_SEGMENT_SIZE = 64L << 20;

    /// <summary>Default largest payload accepted by <see cref="DurableLog.Append"/> in bytes (1 MiB plus 4 KiB).</summary>
    public const int DEFAULT_MAX_ENTRY_SIZE = (1 << 20) + 4096;

    /// <summary>Directory that holds the segment files of one log; it is created if missing.</summary>
    public required string Directory { get; set; }

    /// <summary>Size in bytes of each segment file; an entry whose frame is larger gets a segment of its own that is big enough.</summary>
    public long SegmentSize { get; set; } = DEFAULT_SEGMENT_SIZE;

    /// <summary>Largest payload in bytes that <see cref="DurableLog.Append"/> accepts; larger payloads throw <see cref="ArgumentException"/>.</summary>
    public int MaxEntrySize { get; set; } = DEFAULT_MAX_ENTRY_SIZE;

    /// <summary>Whether flushes call fdatasync; set it to false only in tests that do not need the data to survive a machine crash.</summary>
    public bool Fsync { get; set; } = true;

    /// <summary>How new segment files are preallocated; <see cref="SegmentPreallocation.ZeroFill"/> was the fastest on the measured machine (see docs/storage.md).</summary>
    public SegmentPreallocation Preallocation { get; set; } = SegmentPreallocation.ZeroFill;

    /// <summary>Bytes of unflushed appends after which the writer thread writes them to the file (without fdatasync) even if nobody asked for a flush.</summary>
    public int WriteBehindThreshold { get; set; } = 4 << 20;

    /// <summary>Number of closed segments whose sparse read index is kept in memory; older ones are rebuilt by a scan when read.</summary>
    public int SparseIndexCacheSegments { get; set; } = 16;

    /// <summary>
    /// Longest time the writer waits, when several producers are flushing in a loop, for the producers released by the
    /// previous commit to append again so that one fdatasync covers all of them; it never waits longer than half of the
    /// previous commit took, and never when only one producer is flushing. Zero disables the wait.
    /// </summary>
    public TimeSpan MaxGroupCommitDelay { get; set; } = TimeSpan.FromMicroseconds(200);

    /// <summary>
    /// How long the writer thread busy-waits for the next flush request after completing a commit before it sleeps, as
    /// long as the previous request came within this time; this saves a thread wake-up (about 0.12 ms on the measured
    /// VM) on the commit path of producers that flush back to back. Zero disables it.
    /// </summary>
    public TimeSpan WriterSpin { get; set; } = TimeSpan.FromMicroseconds(100);

    /// <summary>
    /// The silo's shared group commit, or null for a log that fdatasyncs its own files on every flush. With a journal
    /// (and <see cref="Fsync"/> on) a flush writes the log's frames to its own files and makes them durable through
    /// one fdatasync of the journal shared with every other log on the disk; the log syncs its own files only when it
    /// rolls a segment, closes, or the journal checkpoints. See <see cref="CommitJournal"/>.
    /// </summary>
    public CommitJournal? Journal { get; set; }

    /// <summary>
    /// Drop every entry at or above this index when the log opens (a replica cutting off entries that disagree with its
    /// leader's log): their frames are zeroed and fsync'd and later segment files deleted before <c>Open</c> returns, so
    /// appending continues at this index. Entries below it must exist. Not allowed with a <see cref="Journal"/>, whose
    /// replay could bring the dropped frames back. <see cref="long.MaxValue"/> (the default) keeps everything.
    /// </summary>
    public long TruncateFrom { get; set; } = long.MaxValue;

    /// <summary>
    /// The index of the first entry of a log created in an empty directory (a replica installing the retained part of
    /// its leader's trimmed log starts there). Ignored when the directory holds segments. 0 by default.
    /// </summary>
    public long StartIndex { get; set; }

    internal void Validate()
    {
        if (TruncateFrom != long.MaxValue && Journal is not null)
        {
            throw new ArgumentException("TruncateFrom cannot be used with a shared journal.", nameof(TruncateFrom));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(TruncateFrom);
        ArgumentOutOfRangeException.ThrowIfNegative(StartIndex);
        ArgumentException.ThrowIfNullOrWhiteSpace(Directory);
        ArgumentOutOfRangeException.ThrowIfLessThan(SegmentSize, 4096L, nameof(SegmentSize));
        ArgumentOutOfRangeException.ThrowIfNegative(MaxEntrySize, nameof(MaxEntrySize));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxEntrySize, int.MaxValue - 1024, nameof(MaxEntrySize));
        ArgumentOutOfRangeException.ThrowIfLessThan(WriteBehindThreshold, 4096, nameof(WriteBehindThreshold));
        ArgumentOutOfRangeException.ThrowIfLessThan(SparseIndexCacheSegments, 1, nameof(SparseIndexCacheSegments));
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxGroupCommitDelay, TimeSpan.Zero, nameof(MaxGroupCommitDelay));
        ArgumentOutOfRangeException.ThrowIfLessThan(WriterSpin, TimeSpan.Zero, nameof(WriterSpin));
        if (!Enum.IsDefined(Preallocation))
        {
            throw new ArgumentOutOfRangeException(nameof(Preallocation));
        }
    }
}
