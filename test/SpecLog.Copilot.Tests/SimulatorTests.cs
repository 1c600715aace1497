using System.Diagnostics;

namespace SpecLog.Copilot.Tests;

/// <summary>Seed sweeps of the fault simulator; COPILOT_SCHEDULES raises the count, COPILOT_SEED/COPILOT_N replay one.</summary>
public sealed class SimulatorN3Tests(ITestOutputHelper output)
{
    [Fact]
    public void Random_schedules_keep_every_invariant_n3() => SimulatorSweep.Run(3, ReplicationMode.Copilot, 10_000, output);
}

/// <summary>The n = 5 sweep (runs in parallel with the n = 3 one).</summary>
public sealed class SimulatorN5Tests(ITestOutputHelper output)
{
    [Fact]
    public void Random_schedules_keep_every_invariant_n5() => SimulatorSweep.Run(5, ReplicationMode.Copilot, 10_000, output);
}

/// <summary>n = 7 (f = 3, fast quorum 5): a wider ambiguous middle; a smaller sweep.</summary>
public sealed class SimulatorN7Tests(ITestOutputHelper output)
{
    [Fact]
    public void Random_schedules_keep_every_invariant_n7() => SimulatorSweep.Run(7, ReplicationMode.Copilot, 500, output);
}

/// <summary>Multi-Paxos mode under the same faults (fewer schedules: it is the comparison baseline).</summary>
public sealed class SimulatorMultiPaxosTests(ITestOutputHelper output)
{
    [Fact]
    public void Random_schedules_keep_every_invariant_multipaxos() => SimulatorSweep.Run(3, ReplicationMode.MultiPaxos, 1_000, output);
}

/// <summary>Replays the schedule named by COPILOT_SEED (and COPILOT_N, default 3) with a trace.</summary>
public sealed class SimulatorReplayTests(ITestOutputHelper output)
{
    [Fact]
    public void Replay_seed_from_environment()
    {
        var seedText = Environment.GetEnvironmentVariable("COPILOT_SEED");
        if (string.IsNullOrEmpty(seedText))
        {
            output.WriteLine("COPILOT_SEED not set: nothing to replay.");
            return;
        }

        var n = int.TryParse(Environment.GetEnvironmentVariable("COPILOT_N"), out var parsed) ? parsed : 3;
        var mode = Environment.GetEnvironmentVariable("COPILOT_MODE") == "MultiPaxos" ? ReplicationMode.MultiPaxos : ReplicationMode.Copilot;
        var trace = Environment.GetEnvironmentVariable("COPILOT_TRACE") == "1";
        output.WriteLine(new Simulation(int.Parse(seedText), n, mode, trace).Run());
    }
}

internal static class SimulatorSweep
{
    /// <summary>
    /// Runs <c>COPILOT_SCHEDULES</c> (default <paramref name="defaultCount"/>) schedules from seed <c>COPILOT_FIRST_SEED</c>
    /// (default 1). Failures name their seed; with <c>COPILOT_KEEP_GOING=1</c> the sweep collects every failing seed
    /// before failing. Progress goes to the test output every 5,000 schedules.
    /// </summary>
    public static void Run(int n, ReplicationMode mode, int defaultCount, ITestOutputHelper output)
    {
        var count = int.TryParse(Environment.GetEnvironmentVariable("COPILOT_SCHEDULES"), out var c) ? c : defaultCount;
        var first = int.TryParse(Environment.GetEnvironmentVariable("COPILOT_FIRST_SEED"), out var f) ? f : 1;
        var keepGoing = Environment.GetEnvironmentVariable("COPILOT_KEEP_GOING") == "1";
        var sw = Stopwatch.StartNew();
        var totals = new Dictionary<string, long>();
        var failures = new List<string>();
        for (var seed = first; seed < first + count; seed++)
        {
            try
            {
                var sim = new Simulation(seed, n, mode);
                sim.Run();
                foreach (var (name, value) in sim.Counters)
                {
                    totals[name] = totals.GetValueOrDefault(name) + value;
                }

                totals["Checkpoints"] = totals.GetValueOrDefault("Checkpoints") + sim.Checkpoints;
                totals["CheckpointRestarts"] = totals.GetValueOrDefault("CheckpointRestarts") + sim.CheckpointRestarts;
                totals["Rebuilds"] = totals.GetValueOrDefault("Rebuilds") + sim.Rebuilds;
                totals["RebuildWaits"] = totals.GetValueOrDefault("RebuildWaits") + sim.RebuildWaits;
            }
            catch (SimulationException ex) when (keepGoing)
            {
                var line = ex.Message.Split('\n')[0];
                failures.Add(line);
                output.WriteLine(line);
            }

            if ((seed - first + 1) % 5000 == 0)
            {
                output.WriteLine($"n={n} {mode}: {seed - first + 1} schedules, {failures.Count} failures, {sw.Elapsed.TotalSeconds:F0} s");
            }
        }

        output.WriteLine($"n={n} {mode}: {count} schedules (seeds {first}..{first + count - 1}) in {sw.Elapsed.TotalSeconds:F1} s, {failures.Count} failures");
        output.WriteLine(string.Join(", ", totals.Select(kv => $"{kv.Key}={kv.Value}")));
        Assert.True(failures.Count == 0, string.Join("\n", failures));
        if (count >= 100)
        {
            // Disk loss must really be exercised: replicas rebuilt, abstaining at their floors.
            Assert.True(totals.GetValueOrDefault("Rebuilds") > 0, "no replica was rebuilt after a disk loss");
            Assert.True(totals.GetValueOrDefault("Abstentions") > 0, "no rebuilt replica abstained");
        }
    }
}
