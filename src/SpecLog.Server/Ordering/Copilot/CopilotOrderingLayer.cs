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
    private static readonly TimeSpan WindowsGrace = TimeSpan.FromMilliseconds(5);
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

    /// <summary>
    /// The decided windows as the most advanced replica that answers within <see cref="WindowsGrace"/> of the first knows
    /// them. A shard that starts with fewer windows than exist loses nothing: windows are immutable, its reports say how
    /// many it knows, and the pilots' notices send it the rest. So a shard leader taking over after its silo died (which
    /// often held a pilot too) does not wait <see cref="StragglerGrace"/> for a pilot that will never answer.
    /// </summary>
    public Task<WindowSlice> GetWindowsAsync(long fromWindow) =>
        AskMostAdvancedAsync(r => r.GetWindowsAsync(fromWindow), w => w.Windows.Length == 0 ? -1 : w.Windows[^1].Window, WindowsGrace);

    /// <inheritdoc />
    /// <remarks>
    /// Replicas execute the same commands in the same order, so the one that executed most is the most advanced; the
    /// committed GSN, then the windows, then the shard count order them (a join or a window moves no committed GSN, and a
    /// shard named by a window must not be called unknown by a status from a replica that has not executed its join).
    /// </remarks>
    public Task<SequencerStatus> GetStatusAsync() => AskMostAdvancedAsync(r => r.GetSequencerStatusAsync(), s => (s.CommittedGsn, s.Windows, s.ShardCount), StragglerGrace);

    /// <summary>
    /// Asks every replica and keeps the most advanced answer: a shard may have acknowledged a cut that only the pilot
    /// which told it has executed so far, and a read must see it. Waits for both believed pilots (they notify shards),
    /// or for <paramref name="grace"/> after the first answer when a pilot is slow or gone.
    /// </summary>
    private async Task<T> AskMostAdvancedAsync<T, TProgress>(Func<ISequencerReplicaGrain, Task<T>> query, Func<T, TProgress> progress, TimeSpan grace)
    {
        int[] pilots = _multiPaxos ? [Volatile.Read(ref _pilot0)] : [Volatile.Read(ref _pilot0), Volatile.Read(ref _pilot1)];
        pilots = [.. pilots.Where(p => (uint)p < (uint)_replicas)];
        var answers = await GatherAsync(query, tasks => pilots.All(p => tasks[p].IsCompleted), grace);
        return answers.MaxBy(progress)!;
    }

    /// <summary>
    /// Asks every replica at once and returns the answers in hand once <paramref name="enough"/> holds, every replica
    /// answered or failed, <paramref name="grace"/> passed since the first answer, or <see cref="QueryTimeout"/> passed.
    /// Fails only if no replica answered.
    /// </summary>
    private async Task<List<T>> GatherAsync<T>(Func<ISequencerReplicaGrain, Task<T>> query, Func<Task<T>[], bool> enough, TimeSpan grace)
    {
        var tasks = new Task<T>[_replicas];
        for (var i = 0; i < _replicas; i++)
        {
            tasks[i] = query(Replica(i));
        }

        var deadline = Task.Delay(QueryTimeout);
        Task? graceEnd = null;
        while (!enough(tasks) && !tasks.All(t => t.IsCompleted))
        {
            // The pending calls are taken before the grace is armed: a call that completes in between is either in the
            // list (and wakes the wait) or seen here. Taken the other way round, a call completing between the two made
            // the wait sleep until QueryTimeout although every replica had answered.
            var pending = tasks.Where(t => !t.IsCompleted).ToArray();
            if (graceEnd is null && tasks.Any(t => t.IsCompletedSuccessfully))
            {
                graceEnd = Task.Delay(grace);
            }

            if (pending.Length == 0)
            {
                continue; // the last ones completed meanwhile
            }

            var done = await Task.WhenAny([deadline, .. (graceEnd is null ? Array.Empty<Task>() : [graceEnd]), .. pending]);
            if (done == deadline || done == graceEnd)
            {
                break;
            }
        }

        foreach (var t in tasks)
        {
            t.Ignore(); // stragglers' faults are expected (a replica on a dead silo)
        }

        var answers = tasks.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result).ToList();
        if (answers.Count == 0)
        {
            var errors = tasks.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException!).ToArray();
            throw new OrleansException($"No replica of the ordering layer answered within {QueryTimeout.TotalSeconds} s.",
                errors.Length > 0 ? new AggregateException(errors) : new TimeoutException());
        }

        return answers;
    }

    private ISequencerReplicaGrain Replica(int id) => grainFactory.GetGrain<ISequencerReplicaGrain>(id);

    /// <summary>
    /// Learns the pilots from the replicas themselves: all are asked at once, and once a majority answered (or
    /// <see cref="QueryTimeout"/> passed) a replica that says it pilots a log is believed for that log, else what most of
    /// them believe. Asking one replica is not enough: one that stands for a view it cannot win names itself.
    /// </summary>
    private async Task RefreshAsync()
    {
        try
        {
            var majority = _replicas / 2 + 1;
            var answers = await GatherAsync(r => r.GetStatusAsync(), tasks => tasks.Count(t => t.IsCompletedSuccessfully) >= majority, QueryTimeout);
            var p0 = PilotOf(answers, 0);
            var p1 = _multiPaxos ? p0 : PilotOf(answers, 1);
            if (p0 < 0 || p1 < 0)
            {
                return; // every replica that answered is still probing (a new layer starting): keep what was believed
            }

            if (p0 != Volatile.Read(ref _pilot0) || p1 != Volatile.Read(ref _pilot1))
            {
                LogPilots(logger, p0, p1, answers.Count);
            }

            Volatile.Write(ref _pilot0, p0);
            Volatile.Write(ref _pilot1, p1);
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

    /// <summary>
    /// The replica that pilots <paramref name="log"/> by the answers: one that says so (the most believed of them), else
    /// the most believed; -1 when every answer comes from a replica still probing (it believes in nobody).
    /// </summary>
    internal static int PilotOf(IReadOnlyList<ReplicaStatus> answers, int log)
    {
        answers = [.. answers.Where(a => a.Role != "Probing")];
        if (answers.Count == 0)
        {
            return -1;
        }

        int Believed(ReplicaStatus s) => log == 0 ? s.Pilot0 : s.Pilot1;
        int Votes(int replica) => answers.Count(s => Believed(s) == replica);
        var active = answers.Where(s => log == 0 ? s.ActivePilot0 : s.ActivePilot1).Select(s => s.Replica).ToList();
        var candidates = active.Count > 0 ? active : answers.Select(Believed).Distinct().ToList();
        return candidates.OrderByDescending(Votes).ThenBy(r => r).First();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Ordering layer: pilots are now replicas {Pilot0} and {Pilot1} ({Answers} replicas answered)")]
    private static partial void LogPilots(ILogger logger, int pilot0, int pilot1, int answers);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Ordering layer: could not learn the current pilots")]
    private static partial void LogRefreshFailed(ILogger logger, Exception e);
}
