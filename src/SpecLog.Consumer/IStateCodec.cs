using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;

namespace SpecLog.Consumer;

/// <summary>How a consumer copies its state (for rollback snapshots) and turns it into bytes (for checkpoints).</summary>
public interface IStateCodec<TState>
{
    /// <summary>A deep copy that later changes to either side do not affect.</summary>
    TState Copy(TState state);

    /// <summary>The state as bytes, for a checkpoint.</summary>
    byte[] Serialize(TState state);

    /// <summary>The state a checkpoint holds.</summary>
    TState Deserialize(byte[] bytes);
}

/// <summary>
/// Copies and serializes the state with Orleans' serializer: any type Orleans can serialize works (records and classes
/// marked <c>[GenerateSerializer]</c>, collections, primitives), with no application code for rollback.
/// </summary>
public sealed class OrleansStateCodec<TState> : IStateCodec<TState>
{
    private readonly DeepCopier<TState> _copier;
    private readonly Serializer<TState> _serializer;

    /// <summary>Takes Orleans' copier and serializer from <paramref name="services"/> (an Orleans client's or silo's).</summary>
    public OrleansStateCodec(IServiceProvider services)
    {
        ArgumentNullException.ThrowIfNull(services);
        _copier = services.GetRequiredService<DeepCopier<TState>>();
        _serializer = services.GetRequiredService<Serializer<TState>>();
    }

    /// <inheritdoc />
    public TState Copy(TState state) => _copier.Copy(state)!;

    /// <inheritdoc />
    public byte[] Serialize(TState state) => _serializer.SerializeToArray(state);

    /// <inheritdoc />
    public TState Deserialize(byte[] bytes) => _serializer.Deserialize(bytes)!;
}

/// <summary>
/// For states that are never changed in place (each apply returns a new value): a copy is the same reference, so
/// snapshots cost nothing; checkpoints use Orleans' serializer.
/// </summary>
public sealed class ImmutableStateCodec<TState>(IServiceProvider services) : IStateCodec<TState>
{
    private readonly Serializer<TState> _serializer = services.GetRequiredService<Serializer<TState>>();

    /// <inheritdoc />
    public TState Copy(TState state) => state;

    /// <inheritdoc />
    public byte[] Serialize(TState state) => _serializer.SerializeToArray(state);

    /// <inheritdoc />
    public TState Deserialize(byte[] bytes) => _serializer.Deserialize(bytes)!;
}
