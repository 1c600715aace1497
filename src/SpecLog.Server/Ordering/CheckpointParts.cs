namespace SpecLog.Server.Ordering;

/// <summary>
/// Reassembles an ordering replica's checkpoint from the consecutive parts it was written as, while its log is read
/// at recovery. A checkpoint counts only when all its parts are there: a crash may tear the last ones off (what precedes
/// them stands). The log may also begin with the last parts of an older checkpoint whose first parts lay in segments
/// deleted below a newer checkpoint (deletion is by whole segments, and a checkpoint's parts can straddle a segment
/// boundary): those are skipped, the newer checkpoint further on replacing them. A part out of order anywhere else
/// means a damaged log and is refused.
/// </summary>
internal sealed class CheckpointParts(int replica)
{
    private MemoryStream? _parts;
    private int _next;
    private bool _atLogStart = true;

    /// <summary>Parts skipped at the log's start (the tail of a checkpoint whose head was deleted).</summary>
    public int SkippedAtStart { get; private set; }

    /// <summary>Any entry that is not a checkpoint part: an assembly in progress was torn, and the log's start is behind.</summary>
    public void OtherEntry()
    {
        _parts = null;
        _atLogStart = false;
    }

    /// <summary>Adds part <paramref name="part"/> of <paramref name="count"/> read at <paramref name="index"/>; returns the whole checkpoint once its last part is in, else null.</summary>
    /// <exception cref="InvalidDataException">The part does not follow the previous one and is not at the log's start.</exception>
    public byte[]? Add(long index, int part, int count, ReadOnlySpan<byte> bytes)
    {
        if (count < 1 || part < 0 || part >= count)
        {
            throw new InvalidDataException($"Replica {replica}: checkpoint part {part} of {count} at log entry {index} is malformed.");
        }

        if (part == 0)
        {
            _parts = new MemoryStream();
            _next = 0;
            _atLogStart = false;
        }
        else if (_parts is null && _atLogStart)
        {
            SkippedAtStart++;
            return null;
        }

        if (_parts is null || part != _next)
        {
            throw new InvalidDataException($"Replica {replica}: checkpoint part {part} of {count} at log entry {index} does not follow part {_next - 1}.");
        }

        _parts.Write(bytes);
        if (++_next < count)
        {
            return null;
        }

        var whole = _parts.ToArray();
        _parts = null;
        return whole;
    }
}
