using Microsoft.Extensions.Logging;
using System.Diagnostics;
using SpecLog.FixAnte;

namespace SpecLog.Client;

/// <summary>A change of the log's shard set, as decided: the shard and the window (and its first GSN) from which it holds.</summary>
/// <param name="Shard">The shard added or removed.</param>
/// <param name="Window">Added: the first window that gives the shard slots. Removed: the first window that gives it none.</param>
/// <param name="StartGsn">The first GSN of <paramref name="Window"/>: an added shard's records are at or after it, a removed shard's all before it.</param>
public sealed record ShardChange(int Shard, long Window, long StartGsn);

public sealed partial class SpecLogClient
{
    /// <summary>Appends that name no shard go to another shard at most this often when the shards they reach have left.</summary>
    private const int MaxReroutes = 8;

    private readonly SemaphoreSlim _shardsLock = new(1, 1);
    private ShardSet? _shards;
    private AppendBatcher[] _batchers = [];
    private ShardRoutes _routes = null!;
    private TimeSpan _callTimeout;
    private int _refreshing;

    /// <summary>The shard set as this client last learned it.</summary>
    /// <param name="Count">Shard ids are 0 … Count−1 (removed shards included: their records stay readable).</param>
    /// <param name="Active">The shards that take appends.</param>
    /// <param name="LearnedAt">When (<see cref="Stopwatch"/> timestamp) it was learned.</param>
    /// <param name="Failed">The shards declared failed (every replica lost).</param>
    private sealed record ShardSet(int Count, int[] Active, long LearnedAt, int[] Failed);

    /// <summary>Whether this client has learned that <paramref name="shard"/> failed.</summary>
    private bool HasFailed(int shard) => _shards is { Failed.Length: > 0 } set && set.Failed.Contains(shard);

    /// <summary>The number of shard ids of the log (0 … n−1), removed shards included.</summary>
    public async Task<int> GetShardCountAsync(CancellationToken cancellationToken = default) =>
        (await EnsureShardsAsync(cancellationToken)).Count;

    /// <summary>The shards that take appends now (asks the log).</summary>
    public async Task<IReadOnlyList<int>> GetActiveShardsAsync(CancellationToken cancellationToken = default) =>
        (await RefreshShardsAsync(cancellationToken)).Active;

    /// <summary>
    /// Adds a shard to the log while it serves; returns once the ordering layer has decided the window from which the
    /// new shard (the next id) gets slots. The shard takes appends at once (they are positioned from that window on) and
    /// nothing delivered before moves. Two concurrent calls may add the same shard.
    /// </summary>
    /// <exception cref="TimeoutException">The change was not decided within <paramref name="timeout"/> (30 s by default).</exception>
    public async Task<ShardChange> AddShardAsync(TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var shard = (await Sequencer.GetStatusAsync()).ShardCount;

        // Its replicas start (each probes its peers, they elect a leader, the leader reports) as soon as the ordering
        // layer has taken the join, while the window giving it slots is still being decided and begun, rather than at
        // its first append or notice. Best effort: a replica whose node is down starts when the node is back, and the
        // others elect a leader without it.
        Task? replicas = null;
        var change = await ChangeShardsAsync(
            ShardControl.Join,
            shard,
            s => s.ShardCount > shard && !(s.JoiningShards ?? []).Contains(shard),
            timeout,
            cancellationToken,
            s => replicas ??= s.ShardCount > shard ? StartReplicasAsync(shard, cancellationToken) : null);
        var set = await RefreshShardsAsync(cancellationToken);
        await (replicas ?? StartReplicasAsync(shard, cancellationToken));
        return set.Count > shard ? change : throw new InvalidOperationException($"Shard {shard} was added but the log does not list it.");
    }

    /// <summary>Activates every replica of <paramref name="shard"/> (best effort: failures are logged).</summary>
    private Task StartReplicasAsync(int shard, CancellationToken cancellationToken) =>
        Task.WhenAll(Enumerable.Range(0, _routes.Replicas).Select(async r =>
        {
            try
            {
                await _routes.Replica(shard, r).GetStatusAsync().WaitAsync(_callTimeout, cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                LogReplicaStartFailed(_logger, e, shard, r);
            }
        }));

    /// <summary>
    /// Removes shard <paramref name="shard"/> from the log while it serves; returns once the ordering layer has decided the
    /// window from which it gets no slots. It fills its slots in the windows decided before, so its pending appends
    /// complete; appends it takes beyond them fail with <see cref="ShardRemovedException"/> (this client's appends that
    /// name no shard go to other shards). Its records stay readable. A removed shard does not come back.
    /// </summary>
    /// <exception cref="ArgumentException">The shard does not exist, or it is the last shard of the log.</exception>
    /// <exception cref="TimeoutException">The change was not decided within <paramref name="timeout"/> (30 s by default).</exception>
    public async Task<ShardChange> RemoveShardAsync(int shard, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        var change = await ChangeShardsAsync(ShardControl.Leave, shard, s => (s.DepartedShards ?? []).Contains(shard), timeout, cancellationToken);
        await RefreshShardsAsync(cancellationToken);
        return change;
    }

    /// <summary>Asks for a change until the log's status shows it decided, then finds the window it took effect in.</summary>
    private async Task<ShardChange> ChangeShardsAsync(
        ShardControl change, int shard, Func<SequencerStatus, bool> decided, TimeSpan? timeout, CancellationToken cancellationToken, Action<SequencerStatus>? onStatus = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        var started = Stopwatch.GetTimestamp();
        long? asked = null;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var status = await Sequencer.GetStatusAsync();
            onStatus?.Invoke(status);
            if (status.ShardCount > (_shards?.Count ?? 0))
            {
                // The shard has joined (it takes appends at once, positioned from its first window): send it this client's share now.
                await RefreshShardsAsync(cancellationToken);
            }

            if (decided(status))
            {
                return await FindChangeAsync(change, shard, cancellationToken);
            }

            if (Stopwatch.GetElapsedTime(started) >= limit)
            {
                throw new TimeoutException($"{(change == ShardControl.Join ? "Adding" : "Removing")} shard {shard} was not decided within {limit.TotalSeconds:0.###} s.");
            }

            if (asked is not { } at || Stopwatch.GetElapsedTime(at) >= TimeSpan.FromSeconds(1))
            {
                // Ask (again: with a replicated ordering layer a request travels one way and may be lost).
                asked = Stopwatch.GetTimestamp();
                await Sequencer.RequestShardChangeAsync(change, shard);
            }

            await Task.Delay(TimeSpan.FromMilliseconds(5), cancellationToken);
        }
    }

    /// <summary>How long a decided shard-set change may take to show in the windows the ordering replicas send.</summary>
    private static readonly TimeSpan WindowLag = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The first window that gives an added shard slots, or that lists a removed one as departed. The status that said
    /// the change is decided came from the most advanced ordering replica; the windows may come from one that has not
    /// executed it yet (the advanced one slow to answer, or restarting), so they are asked again for up to
    /// <see cref="WindowLag"/> before this gives up.
    /// </summary>
    private async Task<ShardChange> FindChangeAsync(ShardControl change, int shard, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        while (true)
        {
            await RefreshWindowsAsync(int.MaxValue, cancellationToken);
            await _historyLock.WaitAsync(cancellationToken);
            try
            {
                var windows = _history.Windows;
                for (var w = 0; w < windows.Count; w++)
                {
                    if (change == ShardControl.Join ? windows[w].QuotaOf(shard) > 0 : windows[w].HasDeparted(shard))
                    {
                        return new ShardChange(shard, windows[w].Window, windows[w].StartGsn);
                    }
                }
            }
            finally
            {
                _historyLock.Release();
            }

            if (Stopwatch.GetElapsedTime(started) >= WindowLag)
            {
                throw new TimeoutException(
                    $"The log says shard {shard} {(change == ShardControl.Join ? "joined" : "left")}, but no ordering replica sent the window that shows it within {WindowLag.TotalSeconds:0.###} s.");
            }

            await Task.Delay(TimeSpan.FromMilliseconds(20), cancellationToken);
        }
    }

    /// <summary>The shard set, learned once (and refreshed in the background when older than <see cref="SpecLogClientOptions.ShardSetRefresh"/>).</summary>
    private async ValueTask<ShardSet> EnsureShardsAsync(CancellationToken cancellationToken)
    {
        var set = _shards;
        if (set is null)
        {
            return await RefreshShardsAsync(cancellationToken);
        }

        if (Stopwatch.GetElapsedTime(set.LearnedAt) >= _options.ShardSetRefresh && Interlocked.Exchange(ref _refreshing, 1) == 0)
        {
            _ = Task.Run(async () =>
            {
                try
                {
                    await RefreshShardsAsync(CancellationToken.None);
                }
                catch (Exception e)
                {
                    LogShardSetRefreshFailed(_logger, e);
                }
                finally
                {
                    Volatile.Write(ref _refreshing, 0);
                }
            }, CancellationToken.None);
        }

        return set;
    }

    /// <summary>
    /// Asks the log for its shard set now, and makes room for shards added since: at least <paramref name="atLeast"/>
    /// (a window this client holds names them, even if the replica that answered has not executed their join yet).
    /// </summary>
    private async Task<ShardSet> RefreshShardsAsync(CancellationToken cancellationToken, int atLeast = 0)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var status = await Sequencer.GetStatusAsync();
        await _shardsLock.WaitAsync(cancellationToken);
        try
        {
            if (_shards is null)
            {
                _routes = new ShardRoutes(_grainFactory, status.ShardCount, status.ShardReplicas);
                _callTimeout = status.ShardReplicas > 1 ? _options.ReplicatedAppendCallTimeout : _options.AppendCallTimeout;
                _maxRecordSize = status.MaxRecordSize;
                _maxBatchRecords = status.MaxBatchRecords;
            }

            var count = Math.Max(Math.Max(status.ShardCount, _shards?.Count ?? 0), atLeast);
            _routes.Grow(count);
            if (_batchers.Length < count)
            {
                var grown = new AppendBatcher[count];
                Array.Copy(_batchers, grown, _batchers.Length);
                for (var s = _batchers.Length; s < count; s++)
                {
                    var shard = s;
                    grown[s] = new AppendBatcher(
                        (seqs, payloads, tags, ct) => AppendAtLeaderAsync(shard, seqs, payloads, tags, ct),
                        NextSequenceNumber,
                        _maxBatchRecords,
                        _options.MaxAppendsInFlightPerShard,
                        _callTimeout,
                        _options.AppendRetryDeadline,
                        shard);
                }

                Volatile.Write(ref _batchers, grown);
            }

            var active = status.ActiveShards;
            _shards = new ShardSet(count, active.Length > 0 ? active : [.. Enumerable.Range(0, count)], Stopwatch.GetTimestamp(), status.FailedShards ?? []);
            return _shards;
        }
        finally
        {
            _shardsLock.Release();
        }
    }

    private int _maxBatchRecords;

    private AppendBatcher Batcher(int shard) => Volatile.Read(ref _batchers)[shard];

    /// <summary>The shard an append goes to: the one named, or the next active shard in turn.</summary>
    private async Task<int> PickShardAsync(int? shard, CancellationToken cancellationToken)
    {
        if (shard is { } s)
        {
            await CheckShardAsync(s, cancellationToken);
            return s;
        }

        var active = (await EnsureShardsAsync(cancellationToken)).Active;
        return active[(int)((uint)Interlocked.Increment(ref _roundRobin) % (uint)active.Length)];
    }

    /// <summary>Refuses an unknown shard id (asking the log first when the id is beyond what this client knows).</summary>
    private async Task CheckShardAsync(int shard, CancellationToken cancellationToken)
    {
        var count = (await EnsureShardsAsync(cancellationToken)).Count;
        if (shard >= count)
        {
            count = (await RefreshShardsAsync(cancellationToken)).Count;
        }

        if (shard < 0 || shard >= count)
        {
            throw new ArgumentOutOfRangeException(nameof(shard), shard, $"Unknown shard {shard}: the log has {count} shards (0 to {count - 1}).");
        }
    }

    /// <summary>Makes sure this client can reach shard ids below <paramref name="shards"/> (windows may name shards added since it last asked).</summary>
    private async Task<int> EnsureShardCountAsync(int shards, CancellationToken cancellationToken)
    {
        var set = await EnsureShardsAsync(cancellationToken);
        return set.Count >= shards ? set.Count : (await RefreshShardsAsync(cancellationToken, shards)).Count;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Added shard {Shard}: replica {Replica} did not start yet; it starts when its node is reachable")]
    private static partial void LogReplicaStartFailed(ILogger logger, Exception e, int shard, int replica);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Refreshing the shard set failed; the client keeps the one it knows")]
    private static partial void LogShardSetRefreshFailed(ILogger logger, Exception e);
}
