using SpecLog.Consumer;

namespace SpecLog.Samples;

/// <summary>An output a sample times end to end (from its record's append) and may count as an alert.</summary>
public interface ITimedOutput
{
    /// <summary>When the record that produced it was appended (UTC µs).</summary>
    long AppendedAtMicros { get; }

    /// <summary>Whether it is an alert (counted apart).</summary>
    bool IsAlert { get; }
}

/// <summary>What a sample application is: its records, its state, its apply function and how it consumes.</summary>
/// <param name="Name">The consumer's default name (its checkpoints).</param>
/// <param name="NewState">The state before any record (per shard with <see cref="ConsumerOrdering.PerShard"/>).</param>
/// <param name="Apply">The deterministic apply function.</param>
/// <param name="Generate">The <c>i</c>-th record of the workload, stamped with the append time (UTC µs), and the shard it must go to (null: any).</param>
/// <param name="Ordering">GSN order or per shard.</param>
public sealed record SampleApp<TState, TOutput>(
    string Name,
    Func<TState> NewState,
    ApplyRecord<TState, TOutput> Apply,
    Func<long, long, (byte[] Payload, int? Shard)> Generate,
    ConsumerOrdering Ordering)
    where TOutput : ITimedOutput;
