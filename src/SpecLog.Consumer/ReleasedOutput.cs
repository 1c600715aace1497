namespace SpecLog.Consumer;

/// <summary>
/// An output the application's apply function produced, released once the record that produced it is confirmed.
/// (<see cref="Gsn"/>, <see cref="Index"/>) identifies it for ever: a re-run of the same records produces the same
/// pair, so a sink that remembers the last pair it took can drop a repeat after a crash.
/// </summary>
/// <param name="Gsn">The GSN of the record that produced the output.</param>
/// <param name="Index">Its place among that record's outputs (0, 1, …).</param>
/// <param name="Shard">The shard of that record.</param>
/// <param name="Output">What the apply function emitted.</param>
public readonly record struct ReleasedOutput<TOutput>(long Gsn, int Index, int Shard, TOutput Output)
{
    /// <summary>True when this output comes after the one identified by (<paramref name="gsn"/>, <paramref name="index"/>) in release order.</summary>
    public bool IsAfter(long gsn, int index) => Gsn > gsn || (Gsn == gsn && Index > index);
}

/// <summary>Where an apply function puts the outputs of the record it applies; they are held until that record is confirmed.</summary>
public sealed class OutputBuffer<TOutput>
{
    private readonly List<TOutput> _items = [];

    /// <summary>Holds <paramref name="output"/> until the record being applied is confirmed, then releases it to the sink (dropped if the record is rolled back).</summary>
    public void Emit(TOutput output) => _items.Add(output);

    internal int Count => _items.Count;

    internal TOutput this[int index] => _items[index];

    internal void Clear() => _items.Clear();
}

/// <summary>
/// Applies one record to the state and emits its outputs. It must be deterministic (the same state and record give the
/// same new state and outputs) and must not have effects outside the state other than through
/// <paramref name="outputs"/>: a rollback re-applies records to an earlier copy of the state. It may change
/// <paramref name="state"/> in place and return it, or return a new state.
/// </summary>
public delegate TState ApplyRecord<TState, TOutput>(TState state, ConsumedRecord record, OutputBuffer<TOutput> outputs);

/// <summary>A record as the consumer hands it to the apply function.</summary>
/// <param name="Gsn">Its position in the log (speculative until confirmed; the consumer rolls back if it moves).</param>
/// <param name="Shard">The shard that holds it.</param>
/// <param name="Payload">Its bytes.</param>
public readonly record struct ConsumedRecord(long Gsn, int Shard, ReadOnlyMemory<byte> Payload);
