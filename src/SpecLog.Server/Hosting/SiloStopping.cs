using Orleans.Runtime;

namespace SpecLog.Server.Hosting;

/// <summary>
/// Signals that the silo has begun to stop (its <see cref="ServiceLifecycleStage.Active"/> stage stops, before grains
/// deactivate). Orleans deactivates a grain only once its running requests end, so a shard whose appends wait for
/// commits its stopping silo can no longer get would hold the shutdown for the whole deactivation timeout: shards fail
/// those appends here instead (their outcome unknown; the client sends them again, to a replica that leads next).
/// </summary>
internal sealed class SiloStopping : ILifecycleParticipant<ISiloLifecycle>, IDisposable
{
    private readonly CancellationTokenSource _stopping = new();

    /// <summary>Cancelled when the silo begins to stop.</summary>
    public CancellationToken Token => _stopping.Token;

    public void Participate(ISiloLifecycle lifecycle) =>
        lifecycle.Subscribe(nameof(SiloStopping), ServiceLifecycleStage.Active, _ => Task.CompletedTask, _ => _stopping.CancelAsync());

    public void Dispose() => _stopping.Dispose();
}
