namespace SpecLog.Server.Grains;

/// <summary>
/// A shard's memory of which identified appends (client id, sequence number) it holds, and at which slot, so that a
/// retried append gets its original slot instead of a second copy. It remembers the last <c>window</c> identified
/// records (in slot order, rebuilt from the log at activation); for an append it has forgotten it still knows that the
/// client's sequence number is old (per client, the highest forgotten one), so a very late retry is refused instead
/// of written twice.
/// </summary>
internal sealed class AppendDeduplicator(int window)
{
    private readonly Dictionary<(Guid Client, long Seq), long> _slots = [];
    private readonly Queue<(Guid Client, long Seq)> _order = new();
    private readonly Dictionary<Guid, long> _forgottenUpTo = [];

    /// <summary>Identified records remembered now.</summary>
    public int Count => _slots.Count;

    /// <summary>The slot of append <paramref name="seq"/> of <paramref name="client"/>, if this shard holds it.</summary>
    public bool TryGet(Guid client, long seq, out long slot) => _slots.TryGetValue((client, seq), out slot);

    /// <summary>Whether <paramref name="seq"/> is at or below a sequence number of this client that was forgotten.</summary>
    public bool IsForgotten(Guid client, long seq) => _forgottenUpTo.TryGetValue(client, out var upTo) && seq <= upTo;

    /// <summary>
    /// Moves append <paramref name="seq"/> of <paramref name="client"/> to <paramref name="slot"/>: its earlier record
    /// lies in slots a failure voided, so a retry writes it again. It is forgotten when the earlier one would have been.
    /// </summary>
    public void Replace(Guid client, long seq, long slot)
    {
        if (!_slots.ContainsKey((client, seq)))
        {
            throw new InvalidOperationException($"Append {seq} of client {client} is not remembered; nothing to replace.");
        }

        _slots[(client, seq)] = slot;
    }

    /// <summary>Treats every append of <paramref name="client"/> up to <paramref name="seq"/> as forgotten (a trim point's floor, at recovery).</summary>
    public void ForgetUpTo(Guid client, long seq) =>
        _forgottenUpTo[client] = _forgottenUpTo.TryGetValue(client, out var upTo) ? Math.Max(upTo, seq) : seq;

    /// <summary>
    /// What a trim below <paramref name="slot"/> makes this shard forget for good, merged with <paramref name="previous"/>
    /// (the last trim point's): per client, the highest sequence number forgotten already or held below the slot.
    /// </summary>
    public Dictionary<Guid, long> FloorBelow(long slot, IReadOnlyDictionary<Guid, long>? previous)
    {
        var floor = previous is null ? new Dictionary<Guid, long>() : new Dictionary<Guid, long>(previous);
        void Raise(Guid client, long seq) => floor[client] = floor.TryGetValue(client, out var upTo) ? Math.Max(upTo, seq) : seq;
        foreach (var (client, seq) in _forgottenUpTo)
        {
            Raise(client, seq);
        }

        foreach (var ((client, seq), held) in _slots)
        {
            if (held < slot)
            {
                Raise(client, seq);
            }
        }

        return floor;
    }

    /// <summary>Remembers that append <paramref name="seq"/> of <paramref name="client"/> is at <paramref name="slot"/> (slots only grow).</summary>
    public void Add(Guid client, long seq, long slot)
    {
        if (!_slots.TryAdd((client, seq), slot))
        {
            throw new InvalidOperationException($"Append {seq} of client {client} is already at slot {_slots[(client, seq)]}.");
        }

        _order.Enqueue((client, seq));
        while (_order.Count > window)
        {
            var (c, s) = _order.Dequeue();
            _slots.Remove((c, s));
            ForgetUpTo(c, s);
        }
    }
}
