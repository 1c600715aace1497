using Microsoft.Extensions.Logging;
using SpecLog.Copilot;
using SpecLog.FixAnte;

namespace SpecLog.Server.Ordering.Copilot;

/// <summary>
/// The replicated ordering layer as one silo's shards see it: every report goes to both pilots (Copilot) or to the
/// leader (Multi-Paxos) as one-way calls, and shards take committed cuts from whichever pilot tells them first. Which
/// replicas pilot is a cached belief, refreshed in the background; a report sent to a replica that no longer pilots
/// is passed on by that replica, and a lost one is repaired by the shard's retransmission.
/// </summary>
internal sealed partial class CopilotOrderingLayer(IGrainFactory grainFactory, SpecLogOptions options, TimeProvider timeProvider, ILogger<CopilotOrderingLayer> logger)
    : IOrderingLayer
{
    private static readonly TimeSpan RefreshInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan QueryTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan StragglerGrace = TimeSpan.FromMilliseconds(100);
    private readonly int _replicas = options.Replication.Replicas;
    private readonly bool _multiPaxos = options.Replication.Mode == SequencerReplication.MultiPaxos;
    private int _pilot0;
    private int _pilot1 = 1;
    private long _lastRefresh = timeProvider.GetTimestamp();
    private int _refreshing;

    /// <inheritdoc />
    public void SendReport(ShardReport report)
    {
        var p0 = Volatile.Read(ref _pilot0);
        Replica(p0).Submit(report, false).Ignore();
        if (!_multiPaxos)
        {
            var p1 = Volatile.Read(ref _pilot1);
            if (p1 != p0)
            {
                Replica(p1).Submit(report, false).Ignore();
            }
        }

        if (timeProvider.GetElapsedTime(Volatile.Read(ref _lastRefresh)) >= RefreshInterval && Interlocked.Exchange(ref _refreshing, 1) == 0)
        {
            _ = Task.Run(RefreshAsync);
        }
    }

    /// <inheritdoc />
    public Task<WindowConfig[]> GetWindowsAsync(long fromWindow) =>
        AskMostAdvancedAsync(r => r.GetWindowsAsync(fromWindow), w => w.Length);

    /// <inheritdoc />
    public Task<SequencerStatus> GetStatusAsync() => AskMostAdvancedAsync(r => r.GetSequencerStatusAsync(), s => s.CommittedGsn);

    /// <summary>
    /// Asks every replica and keeps the most advanced answer: a shard may have acknowledged a cut that only the pilot
    /// which told it has executed so far, and a read must see it. Waits for both believed pilots (they notify shards),
    /// or for <see cref="StragglerGrace"/> after the first answer when a pilot is slow or gone.
    /// </summary>
    private async Task<T> AskMostAdvancedAsync<T>(Func<ISequencerReplicaGrain, Task<T>> query, Func<T, long> progress)
    {
        var tasks = new Task<T>[_replicas];
        for (var i = 0; i < _replicas; i++)
        {
            tasks[i] = query(Replica(i));
        }

        Task pilots = _multiPaxos
            ? Task.WhenAll(tasks[Volatile.Read(ref _pilot0)])
            : Task.WhenAll(tasks[Volatile.Read(ref _pilot0)], tasks[Volatile.Read(ref _pilot1)]);
        var deadline = Task.Delay(QueryTimeout);
        var pending = tasks.Where(t => !t.IsCompletedSuccessfully).ToList();
        var answered = tasks.Any(t => t.IsCompletedSuccessfully);
        var grace = answered ? Task.Delay(StragglerGrace) : null;
        while (!pilots.IsCompletedSuccessfully && pending.Count > 0)
        {
            var done = await Task.WhenAny([pilots, deadline, .. (grace is null ? Array.Empty<Task>() : [grace]), .. pending]);
            if (done == pilots || done == deadline || done == grace)
            {
                break;
            }

            pending.Remove((Task<T>)done);
            if (grace is null && tasks.Any(t => t.IsCompletedSuccessfully))
            {
                grace = Task.Delay(StragglerGrace);
            }
        }

        var best = tasks.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result).MaxBy(progress);
        if (best is null)
        {
            var errors = tasks.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException!).ToArray();
            throw new OrleansException($"No replica of the ordering layer answered within {QueryTimeout.TotalSeconds} s.",
                errors.Length > 0 ? new AggregateException(errors) : new TimeoutException());
        }

        foreach (var t in tasks)
        {
            t.Ignore(); // stragglers' faults are expected (a replica on a dead silo)
        }

        return best;
    }

    private ISequencerReplicaGrain Replica(int id) => grainFactory.GetGrain<ISequencerReplicaGrain>(id);

    /// <summary>Asks the believed pilot of log 0 first, then the other replicas in turn.</summary>
    private async Task<T> AskAnyAsync<T>(Func<ISequencerReplicaGrain, Task<T>> query)
    {
        var first = Volatile.Read(ref _pilot0);
        Exception? last = null;
        for (var i = 0; i < _replicas; i++)
        {
            var id = (first + i) % _replicas;
            try
            {
                return await query(Replica(id)).WaitAsync(QueryTimeout);
            }
            catch (Exception e) when (e is TimeoutException or OrleansException or InvalidOperationException)
            {
                last = e;
            }
        }

        throw new OrleansException($"No replica of the ordering layer answered within {QueryTimeout.TotalSeconds} s.", last ?? new TimeoutException());
    }

    private async Task RefreshAsync()
    {
        try
        {
            var status = await AskAnyAsync(r => r.GetStatusAsync());
            if (status.Pilot0 != Volatile.Read(ref _pilot0) || status.Pilot1 != Volatile.Read(ref _pilot1))
            {
                LogPilots(logger, status.Pilot0, status.Pilot1, status.Replica);
            }

            Volatile.Write(ref _pilot0, status.Pilot0);
            Volatile.Write(ref _pilot1, status.Pilot1);
        }
        catch (OrleansException e)
        {
            LogRefreshFailed(logger, e);
        }
        finally
        {
            Volatile.Write(ref _lastRefresh, timeProvider.GetTimestamp());
            Volatile.Write(ref _refreshing, 0);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Ordering layer: pilots are now replicas {Pilot0} and {Pilot1} (as replica {Source} believes)")]
    private static partial void LogPilots(ILogger logger, int pilot0, int pilot1, int source);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Ordering layer: could not learn the current pilots")]
    private static partial void LogRefreshFailed(ILogger logger, Exception e);
}
