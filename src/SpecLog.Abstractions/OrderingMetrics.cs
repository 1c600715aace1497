using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace SpecLog;

/// <summary>What one ordering replica (or the single sequencer) has executed and done, read by the ordering instruments.</summary>
/// <param name="Cuts">The committed cut (cuts committed so far).</param>
/// <param name="LagFixes">Lag-fixes issued.</param>
/// <param name="ShardFailures">Whole-shard failures decided: each voids the records the shard delivered speculatively beyond its durable report (mis-speculations).</param>
/// <param name="Replicated">True for a Copilot or Multi-Paxos replica; the four protocol counters below are reported only then.</param>
/// <param name="FastCommits">Entries committed on the fast path as a pilot.</param>
/// <param name="SlowPaths">Entries committed through the Accept phase.</param>
/// <param name="Takeovers">Fast takeovers started.</param>
/// <param name="ViewChanges">View changes won.</param>
public readonly record struct OrderingFigures(
    long Cuts, long LagFixes, long ShardFailures, bool Replicated, long FastCommits = 0, long SlowPaths = 0, long Takeovers = 0, long ViewChanges = 0);

/// <summary>
/// The ordering layer's instruments on the log's meter (<see cref="SpecLogMetrics.MeterName"/>): observable counters
/// read from every sequencer or ordering replica active in this process when an exporter collects, tagged with
/// <c>replica</c> (<c>sequencer</c> for the single sequencer). Each replica executes the same decisions, so across a
/// cluster take the maximum over replicas for cuts, lag-fixes and failures; the protocol counters are per replica.
/// A replica that activates again starts its protocol counters from zero (a counter reset to Prometheus).
/// </summary>
public static class OrderingMetrics
{
    private static readonly ConcurrentDictionary<long, (string Replica, Func<OrderingFigures> Read)> s_sources = new();
    private static long s_next;

    static OrderingMetrics()
    {
        var meter = SpecLogMetrics.Meter;
        meter.CreateObservableCounter("speclog.ordering.cuts", () => Observe(f => f.Cuts, false), "{cut}", "Cuts the ordering layer committed (tag: replica).");
        meter.CreateObservableCounter("speclog.ordering.lag_fixes", () => Observe(f => f.LagFixes, false), "{lagfix}", "Lag-fixes the ordering layer issued (tag: replica).");
        meter.CreateObservableCounter("speclog.ordering.shard_failures", () => Observe(f => f.ShardFailures, false), "{failure}",
            "Whole-shard failures decided; each voids the shard's speculatively delivered records beyond its durable report, a mis-speculation (tag: replica).");
        meter.CreateObservableCounter("speclog.ordering.fast_commits", () => Observe(f => f.FastCommits, true), "{entry}", "Entries a pilot committed on the fast path (tag: replica).");
        meter.CreateObservableCounter("speclog.ordering.slow_paths", () => Observe(f => f.SlowPaths, true), "{entry}", "Entries committed through the Accept phase (tag: replica).");
        meter.CreateObservableCounter("speclog.ordering.takeovers", () => Observe(f => f.Takeovers, true), "{takeover}", "Fast takeovers a replica started (tag: replica).");
        meter.CreateObservableCounter("speclog.ordering.view_changes", () => Observe(f => f.ViewChanges, true), "{view}", "View changes a replica won (tag: replica).");
    }

    /// <summary>
    /// Adds a sequencer or ordering replica the instruments read (<paramref name="read"/> runs on the exporter's thread
    /// and reads the grain's counters without its scheduler: 64-bit reads, a value at most one step stale). Dispose
    /// the result when the grain deactivates.
    /// </summary>
    public static IDisposable AddSource(string replica, Func<OrderingFigures> read)
    {
        var id = Interlocked.Increment(ref s_next);
        s_sources[id] = (replica, read);
        return new Registration(id);
    }

    private static IEnumerable<Measurement<long>> Observe(Func<OrderingFigures, long> select, bool protocolOnly)
    {
        foreach (var (replica, read) in s_sources.Values)
        {
            OrderingFigures figures;
            try
            {
                figures = read();
            }
            catch (Exception e) when (e is NullReferenceException or InvalidOperationException)
            {
                continue; // a replica still starting or already stopping
            }

            if (!protocolOnly || figures.Replicated)
            {
                yield return new Measurement<long>(select(figures), new KeyValuePair<string, object?>("replica", replica));
            }
        }
    }

    private sealed class Registration(long id) : IDisposable
    {
        public void Dispose() => s_sources.TryRemove(id, out _);
    }
}
