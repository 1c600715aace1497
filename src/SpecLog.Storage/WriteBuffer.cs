namespace SpecLog.Storage;

/// <summary>
/// A reusable buffer of encoded frames for entries [FirstIndex, FirstIndex + Count), filled by appenders under the
/// log's lock and handed whole to the writer thread. It remembers the offset of every 64th entry so that reads of
/// unflushed entries do not walk the whole buffer.
/// </summary>
internal sealed class WriteBuffer
{
    private const int SparseShift = 6;
    private const int SparseMask = (1 << SparseShift) - 1;

    private int[] _sparse = new int[64];

    public WriteBuffer(int capacity)
    {
        Data = GC.AllocateUninitializedArray<byte>(capacity);
    }

    public byte[] Data { get; private set; }

    public int Length { get; private set; }

    public long FirstIndex { get; private set; }

    public int Count { get; private set; }

    public void Reset(long firstIndex)
    {
        FirstIndex = firstIndex;
        Length = 0;
        Count = 0;
    }

    /// <summary>Reserves room for the next entry's frame and returns it.</summary>
    public Span<byte> Reserve(int frameLength)
    {
        if ((long)Length + frameLength > Data.Length)
        {
            Grow((long)Length + frameLength);
        }

        int offset = Length;
        if ((Count & SparseMask) == 0)
        {
            int slot = Count >> SparseShift;
            if (slot == _sparse.Length)
            {
                Array.Resize(ref _sparse, _sparse.Length * 2);
            }

            _sparse[slot] = offset;
        }

        Length += frameLength;
        Count++;
        return Data.AsSpan(offset, frameLength);
    }

    /// <summary>Offset of the frame of entry <paramref name="index"/>, which must be in this buffer.</summary>
    public int OffsetOf(long index)
    {
        long relative = index - FirstIndex;
        int offset = _sparse[(int)(relative >> SparseShift)];
        for (long i = relative & ~(long)SparseMask; i < relative; i++)
        {
            offset += Frame.Length((int)Frame.PayloadLength(Data.AsSpan(offset)));
        }

        return offset;
    }

    public bool Contains(long index) => index >= FirstIndex && index < FirstIndex + Count;

    private void Grow(long needed)
    {
        long size = Math.Max(needed, (long)Data.Length * 2);
        if (size > Array.MaxLength)
        {
            size = Math.Max(needed, Array.MaxLength);
            if (size > Array.MaxLength)
            {
                throw new InvalidOperationException("Too many unflushed bytes in the write buffer; call FlushAsync.");
            }
        }

        byte[] bigger = GC.AllocateUninitializedArray<byte>((int)size);
        Data.AsSpan(0, Length).CopyTo(bigger);
        Data = bigger;
    }
}
