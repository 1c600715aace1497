using SpecLog.FixAnte;

namespace SpecLog.Server.Ordering;

/// <summary>
/// The seam between shards and the ordering layer. Shards send reports through it and learn windows from it; the
/// ordering layer answers with <see cref="IShardGrain.OnCommitted"/>. A single sequencer replica implements it now;
/// a replicated (Copilot) ordering layer replaces the implementation without touching shard code.
/// </summary>
public interface IOrderingLayer
{
    /// <summary>Sends a report (one-way; lost reports are repaired by the shard's retransmission).</summary>
    void SendReport(ShardReport report);

    /// <summary>The decided windows numbered <paramref name="fromWindow"/> and above (from the history's base, with it, when it was trimmed above that).</summary>
    Task<WindowSlice> GetWindowsAsync(long fromWindow);

    /// <summary>The sequencer state machine's status.</summary>
    Task<SequencerStatus> GetStatusAsync();
}

/// <summary>The ordering layer made of one sequencer grain (<see cref="SequencerReplication.Single"/>).</summary>
public sealed class SingleSequencerOrderingLayer(IGrainFactory grainFactory) : IOrderingLayer
{
    private ISequencerGrain Sequencer => grainFactory.GetGrain<ISequencerGrain>(0);

    /// <inheritdoc />
    public void SendReport(ShardReport report) => Sequencer.Report(report).Ignore();

    /// <inheritdoc />
    public Task<WindowSlice> GetWindowsAsync(long fromWindow) => Sequencer.GetWindowsAsync(fromWindow);

    /// <inheritdoc />
    public Task<SequencerStatus> GetStatusAsync() => Sequencer.GetStatusAsync();
}
