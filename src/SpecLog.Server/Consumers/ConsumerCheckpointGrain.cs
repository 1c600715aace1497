namespace SpecLog.Server.Consumers;

/// <summary>What a consumer partition's checkpoint grain persists: the owner's fence and the last checkpoint.</summary>
[GenerateSerializer, Alias("speclog.CheckpointRecord")]
public sealed class CheckpointRecord
{
    /// <summary>Raised by every acquisition; saves must carry the current one.</summary>
    [Id(0)]
    public long Fence { get; set; }

    /// <summary>Who acquired last.</summary>
    [Id(1)]
    public string? Owner { get; set; }

    /// <summary>The last checkpoint saved.</summary>
    [Id(2)]
    public ConsumerCheckpoint? Checkpoint { get; set; }
}

/// <summary>
/// One consumer partition's checkpoint, kept through Orleans grain persistence (the provider named
/// <see cref="ConsumerCheckpoints.StorageName"/>): every change is written before the call returns.
/// </summary>
internal sealed class ConsumerCheckpointGrain(
    [PersistentState("checkpoint", ConsumerCheckpoints.StorageName)] IPersistentState<CheckpointRecord> record)
    : Grain, IConsumerCheckpointGrain
{
    public async Task<CheckpointLease> AcquireAsync(string owner)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(owner);
        record.State.Fence++;
        record.State.Owner = owner;
        await record.WriteStateAsync();
        return new CheckpointLease(record.State.Fence, record.State.Checkpoint);
    }

    public async Task SaveAsync(long fence, ConsumerCheckpoint checkpoint)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        if (fence != record.State.Fence)
        {
            throw new CheckpointFencedException(this.GetPrimaryKeyString(), fence, record.State.Fence);
        }

        if (checkpoint.ReleasedThrough < checkpoint.Position)
        {
            throw new ArgumentException($"A checkpoint's release point ({checkpoint.ReleasedThrough}) cannot be below its position ({checkpoint.Position}).", nameof(checkpoint));
        }

        if (record.State.Checkpoint is { } saved && (checkpoint.Position < saved.Position || checkpoint.ReleasedThrough < saved.ReleasedThrough))
        {
            throw new ArgumentException(
                $"Checkpoint of {this.GetPrimaryKeyString()} goes back: position {checkpoint.Position} and release point {checkpoint.ReleasedThrough} against the saved {saved.Position} and {saved.ReleasedThrough}.",
                nameof(checkpoint));
        }

        record.State.Checkpoint = checkpoint;
        await record.WriteStateAsync();
    }

    public Task<ConsumerCheckpoint?> GetAsync() => Task.FromResult(record.State.Checkpoint);

    public Task<CheckpointLease> GetState() => Task.FromResult(new CheckpointLease(record.State.Fence, record.State.Checkpoint));
}
