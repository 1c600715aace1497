namespace SpecLog.Client;

/// <summary>
/// Which replica of each shard the client believes leads it. Starts at replica 0 (the only one of an unreplicated
/// log); a <see cref="ShardNotLeaderException"/> naming the leader's epoch moves it there, and a replica that does not
/// answer (its silo gone, a call timed out) moves it to the next replica, which either leads by now or names the leader.
/// </summary>
internal sealed class ShardRoutes(IGrainFactory grains, int shards, int replicas)
{
    private readonly object _growing = new();
    private int[] _leader = new int[shards]; // a hint per shard: a write racing with Grow may be lost, and is re-learned

    /// <summary>Makes room for shards added to the log (ids below <paramref name="shards"/>).</summary>
    public void Grow(int shards)
    {
        lock (_growing)
        {
            if (shards > _leader.Length)
            {
                var grown = new int[shards];
                Array.Copy(_leader, grown, _leader.Length);
                Volatile.Write(ref _leader, grown);
            }
        }
    }

    /// <summary>The shard's number of replicas.</summary>
    public int Replicas { get; } = Math.Max(1, replicas);

    /// <summary>The replica believed to lead <paramref name="shard"/>.</summary>
    public int LeaderOf(int shard) => Volatile.Read(ref _leader[shard]);

    /// <summary>Replica <paramref name="replica"/> of <paramref name="shard"/>.</summary>
    public IShardGrain Replica(int shard, int replica) => grains.GetGrain<IShardGrain>(ShardKeys.Of(shard, replica));

    /// <summary>A call to <paramref name="replica"/> of <paramref name="shard"/> failed with <paramref name="error"/>: look elsewhere next time.</summary>
    /// <returns>True if the error named the leader, so the call can be repeated there at once.</returns>
    public bool OnFailure(int shard, int replica, Exception error)
    {
        if (Replicas == 1)
        {
            return false;
        }

        if (error is ShardNotLeaderException { LeaderEpoch: >= 0 } notLeader)
        {
            var leader = ShardKeys.LeaderOf(notLeader.LeaderEpoch, Replicas);
            if (leader != replica)
            {
                Volatile.Write(ref _leader[shard], leader);
                return true;
            }
        }

        if (error is ArgumentException or InvalidOperationException)
        {
            return false; // a refusal of the call itself, not of the replica
        }

        Interlocked.CompareExchange(ref _leader[shard], (replica + 1) % Replicas, replica);
        return false;
    }

    /// <summary>
    /// Calls the leader of <paramref name="shard"/>, following <see cref="ShardNotLeaderException"/>s and trying the
    /// next replica when one does not answer, for up to <paramref name="patience"/>.
    /// </summary>
    public async Task<T> CallAsync<T>(int shard, Func<IShardGrain, Task<T>> call, TimeSpan patience, CancellationToken cancellationToken)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var backoff = AppendRetry.FirstBackoff;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var replica = LeaderOf(shard);
            try
            {
                return await call(Replica(shard, replica));
            }
            catch (Exception e) when (Replicas > 1 && (e is ShardNotLeaderException || AppendRetry.IsRetryable(e))
                && System.Diagnostics.Stopwatch.GetElapsedTime(started) < patience)
            {
                if (!OnFailure(shard, replica, e))
                {
                    await Task.Delay(AppendRetry.Pause(e, ref backoff), cancellationToken);
                }
            }
        }
    }

    /// <summary>Like <see cref="CallAsync{T}"/> for calls without a result.</summary>
    public Task CallAsync(int shard, Func<IShardGrain, Task> call, TimeSpan patience, CancellationToken cancellationToken) =>
        CallAsync<bool>(shard, async g => { await call(g); return true; }, patience, cancellationToken);
}
